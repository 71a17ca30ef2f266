/**
 * Reading and checking a model bundle (a directory holding manifest.json and the files it
 * lists), shared by the server, the publisher and the tests. Runs unchanged in Deno and Node:
 * only node:fs/promises, node:path and node:crypto, no tf and no onnxruntime import. The
 * caller's runtime is passed in (a `run` function for the probe, a session for the IO check),
 * so this module decides whether a bundle is sound without owning inference.
 *
 * Every failure is a BundleError naming the bundle directory, the file or field, and the reason.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  decodeProbePixels,
  type Dim,
  type Manifest,
  MANIFEST_FILE,
  ManifestError,
  type TensorSpec,
  validateManifest,
} from "./manifest.ts";
import { normalizePixels } from "./preprocess.ts";

export class BundleError extends Error {
  /**
   * @param dir bundle directory (or another label for the bundle when no directory is known)
   * @param subject the file or field at fault, e.g. `model.onnx` or `manifest.json field "input.shape"`
   */
  constructor(readonly dir: string, readonly subject: string, reason: string) {
    super(`Bundle ${dir}: ${subject}: ${reason}`);
    this.name = "BundleError";
  }
}

/** Reads and validates `<dir>/manifest.json`. */
export async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), "utf8");
  } catch (e) {
    throw new BundleError(dir, MANIFEST_FILE, `cannot be read (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new BundleError(dir, MANIFEST_FILE, `is not valid JSON (${(e as Error).message})`);
  }
  try {
    return validateManifest(raw);
  } catch (e) {
    if (e instanceof ManifestError) {
      throw new BundleError(dir, `${MANIFEST_FILE} field "${e.field}"`, e.message);
    }
    throw e;
  }
}

/** Absolute path of the (first) file with `role`, e.g. "model" or "decoder". */
export function bundleFile(dir: string, manifest: Manifest, role: string): string {
  const f = manifest.files.find((x) => x.role === role);
  if (!f) {
    throw new BundleError(dir, `${MANIFEST_FILE} field "files"`, `has no file with role "${role}"`);
  }
  return join(dir, f.path);
}

/** Checks that every listed file exists with the recorded size and sha256. */
export async function verifyBundleFiles(dir: string, manifest: Manifest): Promise<void> {
  for (const f of manifest.files) {
    const path = join(dir, f.path);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (e) {
      throw new BundleError(
        dir,
        f.path,
        `is listed in the manifest (role "${f.role}") but cannot be read (${(e as Error).message})`,
      );
    }
    if (size !== f.bytes) {
      throw new BundleError(
        dir,
        f.path,
        `has ${size} bytes, the manifest expects ${f.bytes} (truncated or replaced file)`,
      );
    }
    const sha = createHash("sha256").update(await readFile(path)).digest("hex");
    if (sha !== f.sha256) {
      throw new BundleError(
        dir,
        f.path,
        `sha256 is ${sha}, the manifest expects ${f.sha256} (corrupt or replaced file)`,
      );
    }
  }
}

/** A bundle held in memory (downloaded, never written): its manifest and file bytes by path. */
export interface MemoryBundle {
  /** Where it came from (a URL), for error messages in place of a directory. */
  label: string;
  manifest: Manifest;
  files: Map<string, Uint8Array>;
}

/** verifyBundleFiles for a MemoryBundle: every listed file present with its size and sha256. */
export function verifyBundleBytes(bundle: MemoryBundle): void {
  for (const f of bundle.manifest.files) {
    const bytes = bundle.files.get(f.path);
    if (!bytes) {
      throw new BundleError(
        bundle.label,
        f.path,
        `is listed in the manifest (role "${f.role}") but was not downloaded`,
      );
    }
    if (bytes.length !== f.bytes) {
      throw new BundleError(
        bundle.label,
        f.path,
        `has ${bytes.length} bytes, the manifest expects ${f.bytes} (truncated or replaced file)`,
      );
    }
    const sha = createHash("sha256").update(bytes).digest("hex");
    if (sha !== f.sha256) {
      throw new BundleError(
        bundle.label,
        f.path,
        `sha256 is ${sha}, the manifest expects ${f.sha256} (corrupt or replaced file)`,
      );
    }
  }
}

/** Runs the bundle's encoder+classifier on n images (NCHW [n,1,28,28] float in [0,1]). */
export type ProbeRunner = (
  images: Float32Array,
  n: number,
) => Promise<{ probabilities: Float32Array; mu: Float32Array }>;

export interface ProbeReport {
  cases: number;
  /** Largest |actual - recorded| over all probabilities and mu values. */
  maxAbsDiff: number;
}

function argmax(a: ArrayLike<number>, from: number, len: number): number {
  let best = 0;
  for (let i = 1; i < len; i++) if (a[from + i] > a[from + best]) best = i;
  return best;
}

/**
 * Feeds the manifest's probe images through `run` and checks that the outputs reproduce the
 * values recorded at export within `probe.tolerance`, and that every top label is the same.
 * A failure means the runtime, the preprocessing or the model file differs from what was
 * exported. `dir` only labels the error message.
 */
export async function checkProbe(
  manifest: Manifest,
  run: ProbeRunner,
  dir = `${manifest.name}@${manifest.version}`,
): Promise<ProbeReport> {
  const { cases, tolerance } = manifest.probe;
  const n = cases.length;
  const K = manifest.labels.length;
  const L = manifest.latentSize;
  const pixels = 28 * 28;
  const images = new Float32Array(n * pixels);
  cases.forEach((c, i) => {
    const px = decodeProbePixels(c.pixels);
    if (px.length !== pixels) {
      throw new BundleError(
        dir,
        `${MANIFEST_FILE} field "probe.cases[${i}].pixels"`,
        `decodes to ${px.length} bytes, expected ${pixels}`,
      );
    }
    normalizePixels(px, images.subarray(i * pixels, (i + 1) * pixels));
  });
  let out: { probabilities: Float32Array; mu: Float32Array };
  try {
    out = await run(images, n);
  } catch (e) {
    throw new BundleError(
      dir,
      "probe",
      `the model failed to run on the probe images (${(e as Error).message})`,
    );
  }
  if (out.probabilities.length !== n * K) {
    throw new BundleError(
      dir,
      "probe",
      `the model returned ${out.probabilities.length} probabilities for ${n} images, expected ${
        n * K
      }`,
    );
  }
  if (out.mu.length !== n * L) {
    throw new BundleError(
      dir,
      "probe",
      `the model returned ${out.mu.length} mu values for ${n} images, expected ${n * L}`,
    );
  }
  let maxAbsDiff = 0;
  cases.forEach((c, i) => {
    const got = argmax(out.probabilities, i * K, K);
    if (got !== c.index) {
      throw new BundleError(
        dir,
        `probe case ${i}`,
        `top label is ${got} ("${manifest.labels[got]}"), the bundle recorded ${c.index} ("${
          manifest.labels[c.index]
        }")`,
      );
    }
    const compare = (what: string, actual: Float32Array, width: number, recorded: number[]) => {
      for (let j = 0; j < width; j++) {
        const d = Math.abs(actual[i * width + j] - recorded[j]);
        // NaN must fail too, hence the negated comparison.
        if (!(d <= tolerance)) {
          throw new BundleError(
            dir,
            `probe case ${i}`,
            `${what}[${j}] is ${actual[i * width + j]}, the bundle recorded ${
              recorded[j]
            } (difference ${d.toExponential(2)} exceeds tolerance ${tolerance})`,
          );
        }
        maxAbsDiff = Math.max(maxAbsDiff, d);
      }
    };
    compare("probabilities", out.probabilities, K, c.probabilities);
    compare("mu", out.mu, L, c.mu);
  });
  return { cases: n, maxAbsDiff };
}

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
  role: "model" | "decoder",
): { inputs: TensorSpec[]; outputs: TensorSpec[] } | null {
  if (role === "model") {
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
  opts: { role?: "model" | "decoder"; dir?: string } = {},
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
