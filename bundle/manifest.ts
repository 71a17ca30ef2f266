/**
 * The model bundle manifest: what every exported bundle carries beside its ONNX files, and
 * the one validator that trainer, publisher, server and tests use. The server takes tensor
 * names, shapes, label names and latent size from here, never from constants of its own.
 *
 * Shapes use the string "N" for the dynamic batch dimension.
 */
import { labelNamesProblem } from "./labels.ts";
import { type Lineage, LineageError, validateLineage } from "./lineage.ts";
import { type NoveltyCalibration, NoveltyError, validateNovelty } from "./novelty.ts";
import { INPUT_SHAPE, OUTPUT_IMAGE_SHAPE } from "./tensors.ts";

export const MANIFEST_FORMAT = "latent-edge/bundle@1";
export const MANIFEST_FILE = "manifest.json";

/** A version id (and model name) that is safe as one path segment and in a URL. */
export const VERSION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export type Dim = number | "N";

export interface TensorSpec {
  name: string;
  shape: Dim[];
  dtype: "float32";
}

export interface InputSpec extends TensorSpec {
  /** Value range of the float input. */
  range: [number, number];
  /** NCHW: [N, 1, 28, 28]. */
  layout: "NCHW";
  /** Fashion-MNIST polarity: object light on a dark background. */
  polarity: "light-on-dark";
}

export interface FileEntry {
  /** "model" (encoder + classifier), "decoder", "baseline", "latent-map", ... */
  role: string;
  path: string;
  sha256: string;
  bytes: number;
}

export interface ProbeCase {
  /** 784 uint8 pixels, base64, Fashion-MNIST layout (row-major, light on dark). */
  pixels: string;
  /** Top label index the bundle's own onnxruntime run produced at export time. */
  index: number;
  probabilities: number[];
  mu: number[];
}

export interface Metrics {
  testAccuracy: number;
  perClassAccuracy: number[];
  confusion: number[][];
  testElbo?: number;
  [extra: string]: unknown;
}

/** An int8 serving graph carried beside the fp32 one: same tensors, its own file and probe. */
export interface Int8Graph {
  /** files[] role of the int8 graph (INT8_ROLE). */
  role: string;
  probe: { tolerance: number; cases: ProbeCase[] };
  metrics: { testAccuracy: number; evaluatedOn: number; [extra: string]: unknown };
  /** How activation ranges were measured (images, source, statistic). */
  calibration: Record<string, unknown>;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  name: string;
  version: string;
  created: string;
  latentSize: number;
  onnx: { irVersion: number; opset: number };
  input: InputSpec;
  outputs: { probabilities: TensorSpec; mu: TensorSpec; logvar: TensorSpec };
  decoder: { input: TensorSpec; output: TensorSpec } | null;
  labels: string[];
  files: FileEntry[];
  metrics: Metrics;
  training: Record<string, unknown>;
  data: Record<string, unknown>;
  probe: { tolerance: number; cases: ProbeCase[] };
  /** Novelty score calibration (bundle/novelty.ts); absent: novelty is unavailable. */
  novelty?: NoveltyCalibration;
  /** Optional int8 serving graph (bundle/precision.ts); absent in fp32-only bundles. */
  int8?: Int8Graph;
  /**
   * The latent space id, when this version declares its latents compatible with an earlier
   * one's (same id); absent, the version is its own space (latent_translation.ts latentSpaceOf).
   */
  latentSpace?: string;
  /** Parent, data fingerprints and replay of the run (bundle/lineage.ts); absent in older bundles. */
  lineage?: Lineage;
}

export class ManifestError extends Error {
  constructor(readonly field: string, reason: string) {
    super(`Invalid manifest: field "${field}" ${reason}`);
    this.name = "ManifestError";
  }
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function req(o: Obj, key: string, path: string): unknown {
  if (!(key in o) || o[key] === undefined) throw new ManifestError(path + key, "is missing");
  return o[key];
}

function str(o: Obj, key: string, path: string): string {
  const v = req(o, key, path);
  if (typeof v !== "string" || v.length === 0) {
    throw new ManifestError(path + key, `must be a non-empty string, got ${JSON.stringify(v)}`);
  }
  return v;
}

function int(o: Obj, key: string, path: string, min = 0): number {
  const v = req(o, key, path);
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new ManifestError(path + key, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function num(o: Obj, key: string, path: string): number {
  const v = req(o, key, path);
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw new ManifestError(path + key, `must be a finite number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function obj(o: Obj, key: string, path: string): Obj {
  const v = req(o, key, path);
  if (!isObj(v)) throw new ManifestError(path + key, "must be an object");
  return v;
}

function arr(o: Obj, key: string, path: string): unknown[] {
  const v = req(o, key, path);
  if (!Array.isArray(v)) throw new ManifestError(path + key, "must be an array");
  return v;
}

function numArray(o: Obj, key: string, path: string, length?: number): number[] {
  const v = arr(o, key, path);
  if (length !== undefined && v.length !== length) {
    throw new ManifestError(path + key, `must have ${length} entries, got ${v.length}`);
  }
  v.forEach((x, i) => {
    if (typeof x !== "number" || !Number.isFinite(x)) {
      throw new ManifestError(
        `${path}${key}[${i}]`,
        `must be a finite number, got ${JSON.stringify(x)}`,
      );
    }
  });
  return v as number[];
}

function tensor(o: Obj, key: string, path: string, expectShape?: Dim[]): TensorSpec {
  const t = obj(o, key, path);
  const p = `${path}${key}.`;
  str(t, "name", p);
  const shape = arr(t, "shape", p);
  shape.forEach((d, i) => {
    if (d !== "N" && !(typeof d === "number" && Number.isInteger(d) && d > 0)) {
      throw new ManifestError(
        `${p}shape[${i}]`,
        `must be "N" or a positive integer, got ${JSON.stringify(d)}`,
      );
    }
  });
  if (expectShape && JSON.stringify(shape) !== JSON.stringify(expectShape)) {
    throw new ManifestError(
      `${p}shape`,
      `must be ${JSON.stringify(expectShape)}, got ${JSON.stringify(shape)}`,
    );
  }
  if (t.dtype !== "float32") {
    throw new ManifestError(`${p}dtype`, `must be "float32", got ${JSON.stringify(t.dtype)}`);
  }
  return t as unknown as TensorSpec;
}

function checkHeader(m: Obj): void {
  const format = str(m, "format", "");
  if (format !== MANIFEST_FORMAT) {
    throw new ManifestError("format", `must be "${MANIFEST_FORMAT}", got "${format}"`);
  }
  str(m, "name", "");
  const version = str(m, "version", "");
  if (!VERSION_ID.test(version)) {
    throw new ManifestError("version", `must be a path-safe id ([A-Za-z0-9._-]), got "${version}"`);
  }
  const created = str(m, "created", "");
  if (Number.isNaN(Date.parse(created))) {
    throw new ManifestError("created", `is not a date: "${created}"`);
  }
  const onnx = obj(m, "onnx", "");
  int(onnx, "irVersion", "onnx.", 3);
  int(onnx, "opset", "onnx.", 7);
}

function checkInput(m: Obj): void {
  tensor(m, "input", "", INPUT_SHAPE);
  const inp = m.input as Obj;
  const range = numArray(inp, "range", "input.", 2);
  if (range[0] !== 0 || range[1] !== 1) throw new ManifestError("input.range", "must be [0, 1]");
  if (inp.layout !== "NCHW") {
    throw new ManifestError("input.layout", `must be "NCHW", got ${JSON.stringify(inp.layout)}`);
  }
  if (inp.polarity !== "light-on-dark") {
    throw new ManifestError(
      "input.polarity",
      `must be "light-on-dark", got ${JSON.stringify(inp.polarity)}`,
    );
  }
}

/** Returns K, the number of labels. */
function checkLabels(m: Obj): number {
  const labels = arr(m, "labels", "");
  if (labels.length < 2) {
    throw new ManifestError("labels", `must list at least 2 labels, got ${labels.length}`);
  }
  labels.forEach((l, i) => {
    if (typeof l !== "string" || !l) {
      throw new ManifestError(`labels[${i}]`, "must be a non-empty string");
    }
  });
  const labelProblem = labelNamesProblem(labels as string[]);
  if (labelProblem) throw new ManifestError("labels", labelProblem);
  return labels.length;
}

/** The serving graph's outputs and the decoder's tensors; returns whether there is a decoder. */
function checkOutputs(m: Obj, K: number, L: number): boolean {
  const outputs = obj(m, "outputs", "");
  tensor(outputs, "probabilities", "outputs.", ["N", K]);
  tensor(outputs, "mu", "outputs.", ["N", L]);
  tensor(outputs, "logvar", "outputs.", ["N", L]);
  const dec = req(m, "decoder", "");
  if (dec === null) return false;
  if (!isObj(dec)) throw new ManifestError("decoder", "must be an object or null");
  tensor(dec, "input", "decoder.", ["N", L]);
  tensor(dec, "output", "decoder.", OUTPUT_IMAGE_SHAPE);
  return true;
}

/** Returns the roles the files have. */
function checkFiles(m: Obj, hasDecoder: boolean): Set<string> {
  const files = arr(m, "files", "");
  const roles = new Set<string>();
  files.forEach((f, i) => {
    const p = `files[${i}].`;
    if (!isObj(f)) throw new ManifestError(`files[${i}]`, "must be an object");
    const role = str(f, "role", p);
    const path = str(f, "path", p);
    if (path.includes("..") || path.startsWith("/") || path.includes("\\")) {
      throw new ManifestError(`${p}path`, `must be a plain relative file name, got "${path}"`);
    }
    const sha = str(f, "sha256", p);
    if (!/^[0-9a-f]{64}$/.test(sha)) {
      throw new ManifestError(`${p}sha256`, "must be 64 lowercase hex digits");
    }
    int(f, "bytes", p, 1);
    roles.add(role);
  });
  if (!roles.has("model")) {
    throw new ManifestError("files", 'must contain an entry with role "model"');
  }
  if (hasDecoder && !roles.has("decoder")) {
    throw new ManifestError(
      "files",
      'must contain an entry with role "decoder" when "decoder" is set',
    );
  }
  return roles;
}

function checkMetrics(m: Obj, K: number): void {
  const metrics = obj(m, "metrics", "");
  const acc = num(metrics, "testAccuracy", "metrics.");
  if (acc < 0 || acc > 1) throw new ManifestError("metrics.testAccuracy", "must be within [0, 1]");
  numArray(metrics, "perClassAccuracy", "metrics.", K);
  const conf = arr(metrics, "confusion", "metrics.");
  if (conf.length !== K) throw new ManifestError("metrics.confusion", `must be ${K}x${K}`);
  conf.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== K) {
      throw new ManifestError(`metrics.confusion[${i}]`, `must have ${K} entries`);
    }
  });
}

function checkProbeCases(probe: Obj, path: string, K: number, L: number): void {
  const tol = num(probe, "tolerance", path);
  if (tol <= 0) throw new ManifestError(`${path}tolerance`, "must be > 0");
  const cases = arr(probe, "cases", path);
  if (cases.length < 1) throw new ManifestError(`${path}cases`, "must hold at least one case");
  cases.forEach((c, i) => {
    const p = `${path}cases[${i}].`;
    if (!isObj(c)) throw new ManifestError(`${path}cases[${i}]`, "must be an object");
    str(c, "pixels", p);
    const idx = int(c, "index", p);
    if (idx >= K) throw new ManifestError(`${p}index`, `must be < ${K}`);
    numArray(c, "probabilities", p, K);
    numArray(c, "mu", p, L);
  });
}

function checkInt8(m: Obj, K: number, L: number, roles: Set<string>): void {
  const q = obj(m, "int8", "");
  const role = str(q, "role", "int8.");
  if (!roles.has(role)) {
    throw new ManifestError("int8.role", `names role "${role}", which no entry of "files" has`);
  }
  if (role === "model" || role === "decoder") {
    throw new ManifestError("int8.role", `must differ from the fp32 roles, got "${role}"`);
  }
  checkProbeCases(obj(q, "probe", "int8."), "int8.probe.", K, L);
  const metrics = obj(q, "metrics", "int8.");
  const acc = num(metrics, "testAccuracy", "int8.metrics.");
  if (acc < 0 || acc > 1) {
    throw new ManifestError("int8.metrics.testAccuracy", "must be within [0, 1]");
  }
  int(metrics, "evaluatedOn", "int8.metrics.", 1);
  obj(q, "calibration", "int8.");
}

/**
 * Validates a parsed manifest and returns it typed. Throws ManifestError naming the first bad
 * field. Checks structure and internal consistency, not the files (see bundle loaders).
 */
export function validateManifest(raw: unknown): Manifest {
  if (!isObj(raw)) throw new ManifestError("(root)", "must be a JSON object");
  const m = raw;
  checkHeader(m);
  const L = int(m, "latentSize", "", 1);
  checkInput(m);
  const K = checkLabels(m);
  const hasDecoder = checkOutputs(m, K, L);
  const roles = checkFiles(m, hasDecoder);
  checkMetrics(m, K);
  obj(m, "training", "");
  obj(m, "data", "");
  checkProbeCases(obj(m, "probe", ""), "probe.", K, L);
  if (m.int8 !== undefined) checkInt8(m, K, L, roles);
  if (
    m.latentSpace !== undefined &&
    (typeof m.latentSpace !== "string" || !VERSION_ID.test(m.latentSpace))
  ) {
    throw new ManifestError(
      "latentSpace",
      `must be a path-safe id when present, got ${JSON.stringify(m.latentSpace)}`,
    );
  }
  if (m.lineage !== undefined) {
    try {
      validateLineage(m.lineage);
    } catch (e) {
      if (e instanceof LineageError) throw new ManifestError(e.field, e.reason);
      throw e;
    }
  }
  if (m.novelty !== undefined) {
    try {
      validateNovelty(m.novelty, K, L);
    } catch (e) {
      if (e instanceof NoveltyError) throw new ManifestError(e.field, e.reason);
      throw e;
    }
  }
  return m as unknown as Manifest;
}
