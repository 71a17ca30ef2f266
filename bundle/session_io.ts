/**
 * Checks an onnxruntime session (node, web or a worker proxy) against the tensors the manifest
 * declares for the graph of a role: names, and, where the runtime reports them, dtypes and
 * shapes.
 */
import { type Dim, type Manifest, MANIFEST_FILE, type TensorSpec } from "./manifest.ts";
import { BundleError } from "./read.ts";

/** The part of an onnxruntime InferenceSession (node, web or Deno) that checkSessionIO reads. */
export interface SessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly SessionValueMetadata[];
  readonly outputMetadata?: readonly SessionValueMetadata[];
}

export interface SessionValueMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: readonly (number | string)[];
}

/** The tensors a session of `role` must have according to the manifest. */
export function expectedIO(
  manifest: Manifest,
  role: string,
): { inputs: TensorSpec[]; outputs: TensorSpec[] } | null {
  // Every role but the decoder's is a serving graph (fp32 "model" or the int8 graph).
  if (role !== "decoder") {
    const o = manifest.outputs;
    return { inputs: [manifest.input], outputs: [o.probabilities, o.mu, o.logvar] };
  }
  return manifest.decoder
    ? { inputs: [manifest.decoder.input], outputs: [manifest.decoder.output] }
    : null;
}

function shapeMatches(spec: Dim[], actual: readonly (number | string)[]): boolean {
  if (actual.length !== spec.length) return false;
  // "N" is dynamic: the session must report a symbolic (string) or unknown (-1) dimension there.
  return spec.every((d, i) =>
    d === "N" ? typeof actual[i] === "string" || actual[i] === -1 : actual[i] === d
  );
}

/**
 * Checks that a session's input and output names (and, when the runtime reports metadata,
 * dtypes and shapes) are those the manifest declares for the file of `role`.
 */
export function checkSessionIO(
  manifest: Manifest,
  session: SessionLike,
  opts: { role?: string; dir?: string } = {},
): void {
  const role = opts.role ?? "model";
  const dir = opts.dir ?? `${manifest.name}@${manifest.version}`;
  const file = manifest.files.find((f) => f.role === role)?.path ?? role;
  const io = expectedIO(manifest, role);
  if (!io) {
    throw new BundleError(
      dir,
      `${MANIFEST_FILE} field "decoder"`,
      "is null, so there is no decoder session to check",
    );
  }
  const check = (
    kind: "input" | "output",
    names: readonly string[],
    meta: readonly SessionValueMetadata[] | undefined,
    specs: TensorSpec[],
  ) => {
    const missing = specs.filter((s) => !names.includes(s.name)).map((s) => s.name);
    if (missing.length) {
      throw new BundleError(
        dir,
        file,
        `the session lacks ${kind}(s) ${
          missing.map((m) => `"${m}"`).join(", ")
        } declared in the manifest (session ${kind}s: ${names.join(", ") || "none"})`,
      );
    }
    if (kind === "input") {
      const extra = names.filter((x) => !specs.some((s) => s.name === x));
      if (extra.length) {
        throw new BundleError(
          dir,
          file,
          `the session has input(s) ${extra.join(", ")} the manifest does not declare`,
        );
      }
    }
    for (const s of specs) {
      const m = meta?.find((x) => x.name === s.name);
      if (!m || !m.isTensor) continue;
      if (m.type !== undefined && m.type !== s.dtype) {
        throw new BundleError(
          dir,
          file,
          `${kind} "${s.name}" has dtype ${m.type}, the manifest declares ${s.dtype}`,
        );
      }
      if (m.shape && m.shape.length > 0 && !shapeMatches(s.shape, m.shape)) {
        throw new BundleError(
          dir,
          file,
          `${kind} "${s.name}" has shape ${JSON.stringify(m.shape)}, the manifest declares ${
            JSON.stringify(s.shape)
          }`,
        );
      }
    }
  };
  check("input", session.inputNames, session.inputMetadata, io.inputs);
  check("output", session.outputNames, session.outputMetadata, io.outputs);
}
