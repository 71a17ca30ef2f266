/**
 * Adds an int8 serving graph to a bundle (`deno task train -- quantize <bundle>`, or `--int8`
 * when training/exporting): calibrates activation ranges of the bundle's fp32 model.onnx on
 * training images in onnxruntime-node, rewrites it into QDQ form (export/quantize.ts), measures
 * its test accuracy and records its own probe, then writes model.int8.onnx and the manifest's
 * `int8` section. The new bundle is staged in a temporary directory and must pass the
 * publisher's acceptance check for both graphs before anything in `dir` changes; the int8 file
 * lands first and the manifest last, each by a rename. Deterministic: the same bundle and
 * images give the same bytes, so running it twice changes nothing.
 */
import * as ort from "onnxruntime-node";
import { createHash } from "node:crypto";
import { copyFile, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bundleFile,
  decodeProbePixels,
  INT8_FILE,
  INT8_ROLE,
  type Manifest,
  MANIFEST_FILE,
  type ProbeCase,
  readManifest,
  validateManifest,
  verifyBundleFiles,
} from "../bundle/mod.ts";
import { argmax } from "../common/argmax.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { calibrationGraph, quantizeGraph, type Range } from "./export/quantize.ts";
import { verifyWithOnnxRuntime } from "./publish.ts";

/** Training images whose activations set the int8 ranges (enough to see the largest values). */
export const CALIBRATION_IMAGES = 2000;
/**
 * int8 probe tolerance: looser than fp32's because a runtime whose kernels round one
 * requantized activation a step apart moves the outputs by a few thousandths; a wrong or
 * damaged file moves them far more (and changes top labels).
 */
export const INT8_PROBE_TOLERANCE = 1e-2;

export interface Images {
  /** count x 784 uint8 pixels, light on dark. */
  images: Uint8Array;
  count: number;
}

export interface AddInt8Options {
  calibration: Images;
  /** Where the calibration images come from, recorded in the manifest. */
  calibrationSource: string;
  /** Labelled split the int8 accuracy is measured on (the test split). */
  test: Images & { labels: Uint8Array | Uint16Array };
}

type Batches = (x: Float32Array, n: number) => Promise<Record<string, ort.Tensor>>;

async function session(bytes: Uint8Array): Promise<{ run: Batches; release: () => Promise<void> }> {
  ort.env.logLevel = "error";
  // One thread: results then do not depend on how work is split, so reruns give equal bytes.
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  const input = s.inputNames[0];
  return {
    run: (x, n) => s.run({ [input]: new ort.Tensor("float32", x, [n, 1, IMAGE_SIZE, IMAGE_SIZE]) }),
    release: () => s.release(),
  };
}

/** Calls `each` with the outputs of `run` on the images, 500 at a time. */
async function forBatches(
  run: Batches,
  set: Images,
  each: (out: Record<string, ort.Tensor>, start: number, n: number) => void,
): Promise<void> {
  for (let s = 0; s < set.count; s += 500) {
    const n = Math.min(500, set.count - s);
    each(await run(normalizePixels(set.images.subarray(s * PIXELS, (s + n) * PIXELS)), n), s, n);
  }
}

/** Min and max of every tensor calibration needs, over the calibration images. */
export async function calibrate(fp32: Uint8Array, images: Images): Promise<Record<string, Range>> {
  const cal = calibrationGraph(fp32);
  const ranges: Record<string, Range> = {};
  for (const t of cal.tensors) ranges[t] = { min: Infinity, max: -Infinity };
  const s = await session(cal.bytes);
  try {
    await forBatches(s.run, images, (out) => {
      for (const t of cal.tensors) {
        const r = ranges[t];
        for (const v of out[t].data as Float32Array) {
          if (v < r.min) r.min = v;
          if (v > r.max) r.max = v;
        }
      }
    });
  } finally {
    await s.release();
  }
  return ranges;
}

/** The int8 graph of an fp32 serving graph, calibrated on `images`. */
export async function quantizeServing(fp32: Uint8Array, images: Images, inputName: string) {
  const ranges = await calibrate(fp32, images);
  return quantizeGraph(fp32, { inputRanges: { [inputName]: { min: 0, max: 1 } }, ranges });
}

/** Test accuracy of a graph, its top labels, and its outputs on the manifest's probe images. */
async function measure(bytes: Uint8Array, manifest: Manifest, test: AddInt8Options["test"]) {
  const K = manifest.labels.length, L = manifest.latentSize;
  const o = manifest.outputs;
  const s = await session(bytes);
  try {
    const top = new Uint8Array(test.count);
    await forBatches(s.run, test, (out, start, n) => {
      const p = out[o.probabilities.name].data as Float32Array;
      for (let i = 0; i < n; i++) top[start + i] = argmax(p, i * K, K);
    });
    const cases = manifest.probe.cases;
    const px = new Uint8Array(cases.length * PIXELS);
    cases.forEach((c, i) => px.set(decodeProbePixels(c.pixels), i * PIXELS));
    let probe: ProbeCase[] = [];
    await forBatches(s.run, { images: px, count: cases.length }, (out) => {
      const p = out[o.probabilities.name].data as Float32Array;
      const mu = out[o.mu.name].data as Float32Array;
      probe = cases.map((c, i) => ({
        pixels: c.pixels,
        index: argmax(p, i * K, K),
        probabilities: Array.from(p.subarray(i * K, (i + 1) * K)),
        mu: Array.from(mu.subarray(i * L, (i + 1) * L)),
      }));
    });
    let correct = 0;
    top.forEach((t, i) => (correct += t === test.labels[i] ? 1 : 0));
    return { accuracy: correct / test.count, top, probe };
  } finally {
    await s.release();
  }
}

/** Writes `bytes` to `path` through a temporary file and a rename. */
async function atomicWrite(path: string, bytes: Uint8Array | string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
}

/** The manifest with the int8 graph added (or replaced). */
export async function int8Manifest(dir: string, opts: AddInt8Options) {
  const manifest = await readManifest(dir);
  await verifyBundleFiles(dir, manifest);
  const fp32 = new Uint8Array(await readFile(bundleFile(dir, manifest, "model")));
  const bytes = await quantizeServing(fp32, opts.calibration, manifest.input.name);
  const q = await measure(bytes, manifest, opts.test);
  const f = await measure(fp32, manifest, opts.test);
  const agree = q.top.reduce((a, t, i) => a + (t === f.top[i] ? 1 : 0), 0) / opts.test.count;
  const entry = {
    role: INT8_ROLE,
    path: INT8_FILE,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    bytes: bytes.length,
  };
  const next: Manifest = {
    ...manifest,
    files: [...manifest.files.filter((x) => x.role !== INT8_ROLE), entry],
    int8: {
      role: INT8_ROLE,
      probe: { tolerance: INT8_PROBE_TOLERANCE, cases: q.probe },
      metrics: {
        testAccuracy: q.accuracy,
        evaluatedOn: opts.test.count,
        fp32TestAccuracy: f.accuracy,
        topLabelAgreementWithFp32: agree,
        bytesRelativeToFp32: bytes.length / fp32.length,
      },
      calibration: {
        images: opts.calibration.count,
        source: opts.calibrationSource,
        statistic: "min/max per tensor",
        weights: "int8 per output channel, symmetric, 7-bit range (-63..63)",
        activations: "uint8 per tensor",
      },
    },
  };
  validateManifest(JSON.parse(JSON.stringify(next)));
  return { manifest: next, bytes };
}

/**
 * Adds (or refreshes) the int8 graph of the bundle in `dir`; returns the new manifest. Nothing
 * in `dir` changes unless the staged bundle passes the acceptance check of both graphs.
 */
export async function addInt8(dir: string, opts: AddInt8Options): Promise<Manifest> {
  const { manifest, bytes } = await int8Manifest(dir, opts);
  const text = JSON.stringify(manifest, null, 2) + "\n";
  const stage = await mkdtemp(join(tmpdir(), "latent-edge-int8-"));
  try {
    for (const f of manifest.files) {
      if (f.role !== INT8_ROLE) await copyFile(join(dir, f.path), join(stage, f.path));
    }
    await writeFile(join(stage, INT8_FILE), bytes);
    await writeFile(join(stage, MANIFEST_FILE), text);
    const staged = await readManifest(stage);
    await verifyBundleFiles(stage, staged);
    await verifyWithOnnxRuntime(stage, staged);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
  await atomicWrite(join(dir, INT8_FILE), bytes);
  await atomicWrite(join(dir, MANIFEST_FILE), text);
  return readManifest(dir);
}
