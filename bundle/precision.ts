/**
 * Which serving graph of a bundle runs: the fp32 graph every bundle has (role "model", the
 * manifest's `probe`) or the optional int8 graph beside it (manifest `int8`: its own role and
 * probe). The acceptance check and the server both resolve a precision here, so "which file,
 * which probe" has one answer.
 */
import { type Manifest, MANIFEST_FILE, type ProbeCase } from "./manifest.ts";
import { BundleError } from "./read.ts";

export type Precision = "fp32" | "int8";
/** What a server asks for: a precision, or "auto" (int8 when the bundle has it). */
export type PrecisionChoice = Precision | "auto";

/** files[] role of the int8 serving graph written by the trainer's quantizer. */
export const INT8_ROLE = "model-int8";
export const INT8_FILE = "model.int8.onnx";

/** The precisions a bundle can serve, fp32 first. */
export function precisionsOf(manifest: Manifest): Precision[] {
  return manifest.int8 ? ["fp32", "int8"] : ["fp32"];
}

/** Resolves a choice against a bundle; asking for int8 from a bundle without it is an error. */
export function choosePrecision(
  manifest: Manifest,
  choice: PrecisionChoice,
  dir: string,
): Precision {
  if (choice === "auto") return manifest.int8 ? "int8" : "fp32";
  if (choice === "int8" && !manifest.int8) {
    throw new BundleError(
      dir,
      `${MANIFEST_FILE} field "int8"`,
      "is missing, so the bundle has no int8 graph (add one with `deno task train -- quantize <bundle>`)",
    );
  }
  return choice;
}

/** The files[] role holding the serving graph of `precision`. */
export function servingRole(manifest: Manifest, precision: Precision): string {
  return precision === "int8" ? manifest.int8!.role : "model";
}

/** The probe recorded for the serving graph of `precision`. */
export function probeOf(
  manifest: Manifest,
  precision: Precision,
): { tolerance: number; cases: ProbeCase[] } {
  return precision === "int8" ? manifest.int8!.probe : manifest.probe;
}
