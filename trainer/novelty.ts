/**
 * Novelty calibration at export: runs a bundle's serving graph (onnxruntime-node) on training
 * images to fit the class-conditional Gaussians of bundle/novelty.ts, scores held-out
 * in-distribution images to store their percentiles and the default threshold, and writes the
 * result into the bundle's manifest. The held-out images are the bundle's own validation split
 * when it was trained with one (never seen in training); otherwise a seeded split of the
 * training set, which the manifest records. Deterministic: the same bundle and data give the
 * same calibration, so re-running it is a no-op.
 */
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  DEFAULT_THRESHOLD_PERCENTILE,
  type EncodedImages,
  encodeSet,
  fitClassGaussians,
  type Manifest,
  MANIFEST_FILE,
  type NoveltyCalibration,
  type NoveltyFeature,
  noveltyFeatures,
  noveltyScorer,
  openGraph,
  percentileTable,
  readManifest,
  scoreRows,
  servingNames,
  thresholdAt,
  validateManifest,
  verifyBundleFiles,
} from "../bundle/mod.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { type Split, trainValSplit } from "./data.ts";
import { nodeGraphRuntime } from "./ort_node.ts";

/** The chosen score (reports/novelty/report.md has the measurements behind it). */
export const NOVELTY_FEATURES: NoveltyFeature[] = ["mu", "stats"];
export const NOVELTY_COVARIANCE: "tied" | "per-class" = "per-class";
/** Held-out images when the bundle was trained on the whole training set. */
export const HELD_OUT_COUNT = 10000;
export const HELD_OUT_SEED = 1;

export interface CalibrationSplit {
  fit: Split;
  heldOut: Split;
  fitSource: string;
  heldOutSource: string;
}

/**
 * The images a bundle's calibration uses: its own validation split when its training record
 * has one (trainer/data.ts trainValSplit with the training seed), else a seeded split of train.
 */
export function calibrationSplit(
  manifest: Manifest,
  train: Split,
  heldOutCount = HELD_OUT_COUNT,
): CalibrationSplit {
  const t = manifest.training as {
    seed?: number;
    data?: { valCount?: number; trainCount?: number };
  };
  const valCount = t.data?.valCount ?? 0;
  if (valCount > 0 && !(t.data?.trainCount) && typeof t.seed === "number") {
    const { train: fit, val } = trainValSplit(train, valCount, t.seed);
    const src = `trainValSplit(train, ${valCount}, seed ${t.seed})`;
    return {
      fit,
      heldOut: val,
      fitSource: `${src}.train (the bundle's training images)`,
      heldOutSource: `${src}.val (the bundle's validation images, unseen in training)`,
    };
  }
  const { train: fit, val } = trainValSplit(train, heldOutCount, HELD_OUT_SEED);
  const src = `trainValSplit(train, ${heldOutCount}, seed ${HELD_OUT_SEED})`;
  return {
    fit,
    heldOut: val,
    fitSource: `${src}.train`,
    heldOutSource:
      `${src}.val (training images not used for the fit; the encoder saw them in training)`,
  };
}

export interface CalibrateOptions {
  features?: NoveltyFeature[];
  covariance?: "tied" | "per-class";
  thresholdPercentile?: number;
  /** Held-out images when the bundle has no validation split of its own (default 10,000). */
  heldOutCount?: number;
}

/** Fits on `fit`'s outputs, calibrates on `heldOut`'s: the manifest's `novelty` section. */
export function calibrateFromOutputs(
  manifest: Manifest,
  fit: {
    out: EncodedImages;
    images: Float32Array;
    labels: Uint8Array | Uint16Array;
    source: string;
  },
  heldOut: { out: EncodedImages; images: Float32Array; source: string },
  opts: CalibrateOptions = {},
): NoveltyCalibration {
  const features = opts.features ?? NOVELTY_FEATURES;
  const L = manifest.latentSize, K = manifest.labels.length;
  const fx = noveltyFeatures(features, { ...fit.out, images: fit.images }, fit.out.count, L);
  const g = fitClassGaussians(
    fx,
    fit.labels,
    fit.out.count,
    K,
    opts.covariance ?? NOVELTY_COVARIANCE,
  );
  const hx = noveltyFeatures(
    features,
    { ...heldOut.out, images: heldOut.images },
    heldOut.out.count,
    L,
  );
  const table = percentileTable(scoreRows(noveltyScorer(g), hx, heldOut.out.count));
  const p = opts.thresholdPercentile ?? DEFAULT_THRESHOLD_PERCENTILE;
  return {
    method: "class-gaussian-mahalanobis",
    features,
    ...g,
    percentiles: table,
    threshold: { percentile: p, score: thresholdAt(table, p) },
    fit: { images: fit.out.count, source: fit.source },
    heldOut: { images: heldOut.out.count, source: heldOut.source },
  };
}

/**
 * Calibrates the bundle in `dir` on `train` (the Fashion-MNIST training split) and rewrites
 * its manifest with the `novelty` section (temp file + rename). The ONNX files are untouched,
 * so their checksums and the version stay as they were.
 */
export async function calibrateBundle(
  dir: string,
  train: Split,
  opts: CalibrateOptions = {},
): Promise<NoveltyCalibration> {
  const manifest = await readManifest(dir);
  await verifyBundleFiles(dir, manifest);
  const graph = await openGraph(dir, manifest, "model", nodeGraphRuntime(0));
  try {
    const split = calibrationSplit(manifest, train, opts.heldOutCount);
    const encode = (s: Split) => encodeSet(graph, servingNames(manifest), s.images, s.count);
    const fitOut = await encode(split.fit);
    const heldOut = await encode(split.heldOut);
    const novelty = calibrateFromOutputs(
      manifest,
      {
        out: fitOut,
        images: normalizePixels(split.fit.images),
        labels: split.fit.labels,
        source: split.fitSource,
      },
      { out: heldOut, images: normalizePixels(split.heldOut.images), source: split.heldOutSource },
      opts,
    );
    const next = validateManifest({ ...manifest, novelty });
    const tmp = join(dir, `.${MANIFEST_FILE}.${process.pid}.tmp`);
    await writeFile(tmp, JSON.stringify(next, null, 2) + "\n");
    await rename(tmp, join(dir, MANIFEST_FILE));
    return novelty;
  } finally {
    await graph.release();
  }
}
