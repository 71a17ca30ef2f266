/**
 * Writes a model bundle: the exported ONNX files (model.onnx = encoder + latent classifier,
 * decoder.onnx), an optional latent-map.json for the demo page, and manifest.json describing
 * them. Metrics and probe cases come from running the exported model.onnx in onnxruntime-node,
 * so they describe the file that will be served, not the tfjs model it came from; the tfjs
 * outputs are only used to check export parity. The manifest is written last (temp file +
 * rename) after the previous one is removed, so a reader never sees a manifest that promises
 * files still being written. The written bundle is re-read and verified with bundle/.
 *
 * writeBundle runs its steps in that order: evaluationSet, the export, runExported
 * (bundle_serving.ts), exportParity (bundle_parity.ts), probeCases and the metrics, writeFiles,
 * manifestOf, commitManifest.
 */
import { argmax } from "../common/argmax.ts";
import type * as tf from "@tensorflow/tfjs";
import { createHash } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type FileEntry,
  HELD_OUT_FILE,
  heldOutRecord,
  LATENT_MAP_FILE,
  LATENT_MAP_FORMAT,
  type LatentMap,
  latentMap,
  type Manifest,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  type Metrics,
  type ProbeCase,
  readManifest,
  validateManifest,
  verifyBundleFiles,
} from "../bundle/mod.ts";
import { FASHION_LABELS, IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import {
  DECODER_IO,
  exportDecoder,
  exportServingModel,
  ONNX_IR_VERSION,
  ONNX_OPSET,
  SERVING_IO,
} from "./export/onnx.ts";
import type { HeadConfig, VaeConfig } from "./model.ts";
import { writeSamples } from "./bundle_samples.ts";
import { exportParity } from "./bundle_parity.ts";
import { probeCases, runExported } from "./bundle_serving.ts";

/** Probe values must reproduce within this (float32 runtimes differ by ~1e-6 on these graphs). */
export const PROBE_TOLERANCE = 1e-4;
export const PROBE_CASES = 8;
export const LATENT_MAP_POINTS = 2000;

export interface LabelledImages {
  /** count * 784 uint8 pixels, row-major, light on dark. */
  images: Uint8Array;
  /** Class index per image (Uint16Array beyond 256 classes). */
  labels: Uint8Array | Uint16Array;
  count: number;
}

export interface WriteBundleOptions {
  name: string;
  encoder: tf.LayersModel;
  /** null writes a bundle without decoder.onnx (manifest "decoder": null). */
  decoder: tf.LayersModel | null;
  head: tf.LayersModel;
  vaeConfig: VaeConfig;
  headConfig: HeadConfig;
  /** Free-form training record (epochs, batch size, seeds, losses...); stored as manifest.training. */
  training: Record<string, unknown>;
  /** sha256 per dataset file (trainer/data.ts Dataset.fingerprint); may instead come in `data.fingerprint`. */
  fingerprint?: Record<string, string>;
  /** The split the metrics are computed on (usually the test split or a subset of it). */
  test: LabelledImages;
  /** Test negative ELBO (nats per image, lower is better; trainer/train.ts evaluateVae().elbo), if known. */
  testElbo?: number;
  /** Extra metrics merged into manifest.metrics (e.g. validation accuracy). */
  extraMetrics?: Record<string, unknown>;
  /** Extra data descriptors merged into manifest.data (e.g. train subset size, seed). */
  data?: Record<string, unknown>;
  /** Points in latent-map.json; 0 leaves the file out. Default LATENT_MAP_POINTS. */
  latentMapPoints?: number;
  labels?: readonly string[];
  /** Sample images per class (samples.json, the demo's examples) from `test`; 0 leaves them out. */
  samplesPerClass?: number;
  /** Content hashes of the held-out images (held-out.json), for image-folder datasets. */
  heldOut?: { test: string[]; val: string[] };
  /** Fixed clock for reproducible tests. */
  now?: Date;
}

function sha256(b: Uint8Array | string): string {
  return createHash("sha256").update(b).digest("hex");
}

/** "20261126T131500Z": ISO 8601 basic format, sortable as a string. */
export function compactUtc(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
}

/** Accuracy, per-class accuracy (recall) and confusion matrix (rows: true label, columns: predicted). */
export function classificationMetrics(
  probabilities: Float32Array,
  labels: Uint8Array | Uint16Array,
  K: number,
): Pick<Metrics, "testAccuracy" | "perClassAccuracy" | "confusion"> {
  const n = labels.length;
  const confusion = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const p = argmax(probabilities, i * K, K);
    confusion[labels[i]][p]++;
    if (p === labels[i]) correct++;
  }
  const perClassAccuracy = confusion.map((row, k) => {
    const total = row.reduce((a, b) => a + b, 0);
    return total === 0 ? 0 : row[k] / total;
  });
  return { testAccuracy: n === 0 ? 0 : correct / n, perClassAccuracy, confusion };
}

/** Up to `count` test rows, visiting classes round-robin so the probe covers as many classes as possible. */
export function pickProbeRows(
  labels: Uint8Array | Uint16Array,
  count: number,
  K: number,
): number[] {
  const byClass: number[][] = Array.from({ length: K }, () => []);
  labels.forEach((l, i) => byClass[l].push(i));
  const rows: number[] = [];
  for (let round = 0; rows.length < count; round++) {
    let added = false;
    for (let k = 0; k < K && rows.length < count; k++) {
      if (round < byClass[k].length) {
        rows.push(byClass[k][round]);
        added = true;
      }
    }
    if (!added) break;
  }
  return rows;
}

/** The evaluation split trimmed to `count`; refused before anything is exported or written. */
function evaluationSet(test: LabelledImages): LabelledImages {
  if (
    test.count < 1 || test.images.length < test.count * PIXELS || test.labels.length < test.count
  ) {
    throw new Error(
      `writeBundle: the test split must hold count=${test.count} >= 1 images and labels`,
    );
  }
  return {
    images: test.images.subarray(0, test.count * PIXELS),
    labels: test.labels.subarray(0, test.count),
    count: test.count,
  };
}

/**
 * Writes every file but the manifest and returns their entries, model.onnx first. Removing the
 * old manifest first means a crash mid-write leaves a directory no loader accepts, rather than
 * an old manifest over new files.
 */
async function writeFiles(
  dir: string,
  opts: WriteBundleOptions,
  bytes: { model: Uint8Array; decoder: Uint8Array | null },
  testSet: LabelledImages,
  mu: Float32Array,
  K: number,
): Promise<FileEntry[]> {
  await mkdir(dir, { recursive: true });
  await rm(join(dir, MANIFEST_FILE), { force: true });
  const files: FileEntry[] = [];
  const put = async (role: string, path: string, bytes: Uint8Array) => {
    await writeFile(join(dir, path), bytes);
    files.push({ role, path, sha256: sha256(bytes), bytes: bytes.length });
  };
  await put("model", "model.onnx", bytes.model);
  if (bytes.decoder) await put("decoder", "decoder.onnx", bytes.decoder);
  const mapPoints = Math.min(opts.latentMapPoints ?? LATENT_MAP_POINTS, testSet.count);
  if (mapPoints > 0) {
    const doc: LatentMap = {
      format: LATENT_MAP_FORMAT,
      ...latentMap(mu, opts.vaeConfig.latent, mapPoints),
      labels: Array.from(testSet.labels.subarray(0, mapPoints)),
      source: `first ${mapPoints} images of the evaluation split`,
    };
    await put("latent-map", LATENT_MAP_FILE, new TextEncoder().encode(JSON.stringify(doc)));
  } else {
    await rm(join(dir, LATENT_MAP_FILE), { force: true });
  }
  if (opts.samplesPerClass) files.push(await writeSamples(dir, testSet, K, opts.samplesPerClass));
  if (opts.heldOut) {
    const text = JSON.stringify(heldOutRecord(opts.heldOut));
    await put("held-out", HELD_OUT_FILE, new TextEncoder().encode(text));
  }
  return files;
}

/** What the manifest records beyond the options: the outcome of the steps before it. */
interface ManifestParts {
  labels: string[];
  files: FileEntry[];
  metrics: Metrics;
  cases: ProbeCase[];
  hasDecoder: boolean;
  evaluatedOn: number;
}

/** The manifest of the bundle; its version is the creation time and model.onnx's hash. */
function manifestOf(opts: WriteBundleOptions, p: ManifestParts): Manifest {
  const K = p.labels.length, L = opts.vaeConfig.latent;
  const created = opts.now ?? new Date();
  const spec = (name: string, shape: (number | "N")[]) => ({
    name,
    shape,
    dtype: "float32" as const,
  });
  return {
    format: MANIFEST_FORMAT,
    name: opts.name,
    version: `${compactUtc(created)}-${p.files[0].sha256.slice(0, 8)}`,
    created: created.toISOString(),
    latentSize: L,
    onnx: { irVersion: ONNX_IR_VERSION, opset: ONNX_OPSET },
    input: {
      ...spec(SERVING_IO.input, ["N", 1, IMAGE_SIZE, IMAGE_SIZE]),
      range: [0, 1],
      layout: "NCHW",
      polarity: "light-on-dark",
    },
    outputs: {
      probabilities: spec(SERVING_IO.probabilities, ["N", K]),
      mu: spec(SERVING_IO.mu, ["N", L]),
      logvar: spec(SERVING_IO.logvar, ["N", L]),
    },
    decoder: p.hasDecoder
      ? {
        input: spec(DECODER_IO.input, ["N", L]),
        output: spec(DECODER_IO.output, ["N", IMAGE_SIZE, IMAGE_SIZE]),
      }
      : null,
    labels: p.labels,
    files: p.files,
    metrics: p.metrics,
    // Everything needed to rebuild the models: the architecture configs travel with the weights.
    training: { ...opts.training, vae: opts.vaeConfig, head: opts.headConfig },
    data: {
      dataset: "fashion-mnist",
      ...(opts.fingerprint ? { fingerprint: opts.fingerprint } : {}),
      evaluation: { split: "test", count: p.evaluatedOn },
      ...opts.data,
    },
    probe: { tolerance: PROBE_TOLERANCE, cases: p.cases },
  };
}

/**
 * Validates the manifest, writes it last (temp file + rename) and returns it as read back
 * through the same code the server uses, with every file it lists verified.
 */
async function commitManifest(dir: string, manifest: Manifest): Promise<Manifest> {
  validateManifest(JSON.parse(JSON.stringify(manifest)));
  const tmp = join(dir, `.${MANIFEST_FILE}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(manifest, null, 2) + "\n");
  await rename(tmp, join(dir, MANIFEST_FILE));
  const written = await readManifest(dir);
  await verifyBundleFiles(dir, written);
  return written;
}

/**
 * Exports, evaluates and writes the bundle into `dir` (created if needed); returns the manifest
 * as re-read from disk. metrics.exportParityMaxAbsDiff records the largest |onnxruntime - tfjs|
 * seen on the first PARITY_IMAGES evaluated images (probabilities, mu, logvar, decoder pixels).
 */
export async function writeBundle(dir: string, opts: WriteBundleOptions): Promise<Manifest> {
  const labels = [...(opts.labels ?? FASHION_LABELS)];
  const K = labels.length;
  const L = opts.vaeConfig.latent;
  const testSet = evaluationSet(opts.test);
  const bytes = {
    model: exportServingModel(opts.encoder, opts.head, L, opts.headConfig.input),
    decoder: opts.decoder ? exportDecoder(opts.decoder, L) : null,
  };
  const rows = pickProbeRows(testSet.labels, PROBE_CASES, K);
  const { served, probe } = await runExported(bytes.model, testSet, rows);
  const parity = await exportParity(opts, bytes.decoder, served, testSet, K);
  if (!(parity.maxAbsDiff <= PROBE_TOLERANCE)) {
    throw new Error(
      `writeBundle: the exported ONNX differs from the tfjs model by ${parity.maxAbsDiff} on ${parity.images} test images (tolerance ${PROBE_TOLERANCE}); not writing ${dir}`,
    );
  }
  const cases = probeCases(testSet, rows, probe, K, L);
  const metrics: Metrics = {
    ...classificationMetrics(served.probabilities, testSet.labels, K),
    ...(opts.testElbo !== undefined ? { testElbo: opts.testElbo } : {}),
    evaluatedOn: testSet.count,
    confusionAxes: "rows: true label, columns: predicted label",
    exportParityMaxAbsDiff: parity.maxAbsDiff,
    exportParityImages: parity.images,
    ...opts.extraMetrics,
  };
  const files = await writeFiles(dir, opts, bytes, testSet, served.mu, K);
  const manifest = manifestOf(opts, {
    labels,
    files,
    metrics,
    cases,
    hasDecoder: bytes.decoder !== null,
    evaluatedOn: testSet.count,
  });
  return await commitManifest(dir, manifest);
}
