/**
 * The novelty score and its calibration: how unlike the training images an input is, computed
 * from the serving graph's outputs (mu, optionally log-variance) and three statistics of the
 * input image, with no extra graph run. The score is the smallest squared Mahalanobis distance
 * of that feature vector to K class-conditional Gaussians fitted on training images (plus each
 * Gaussian's log-determinant when the classes have covariances of their own): a distance from
 * the training density in feature space rather than the VAE's pixel likelihood, which rates
 * MNIST digits as more likely than Fashion-MNIST's own test images. Calibration stores the score's percentiles on
 * held-out in-distribution images and a threshold; the manifest carries it under `novelty`.
 * Pure: no runtime imports, used by the trainer (fit, calibrate), the server (score) and tests.
 */
import { IMAGE_SIZE } from "../common/labels.ts";

/** Which encoder outputs form the feature vector, in order. */
export type NoveltyFeature = "mu" | "logvar" | "stats";

export interface NoveltyCalibration {
  method: "class-gaussian-mahalanobis";
  features: NoveltyFeature[];
  /** "tied": one covariance shared by the classes; "per-class": one each (score adds log det). */
  covariance: "tied" | "per-class";
  /** K x D class means. */
  means: number[][];
  /** Whitening matrices W (Sigma^-1 = W^T W): one (tied) or K (per-class), each D x D. */
  whiten: number[][][];
  /** Per-class constant added to the distance (log det Sigma_k; 0 when tied), K entries. */
  offsets: number[];
  /** Scores at percentiles 0, 100/(n-1), ..., 100 of the held-out images (ascending). */
  percentiles: number[];
  /** Default threshold: a score above it is out of distribution. */
  threshold: { percentile: number; score: number };
  /** What the Gaussians were fitted on and what the percentiles were measured on. */
  fit: { images: number; source: string };
  heldOut: { images: number; source: string };
}

export interface NoveltyResult {
  score: number;
  /** Percent of held-out in-distribution images scoring at most this (0..100). */
  percentile: number;
  outOfDistribution: boolean;
}

export class NoveltyError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`Invalid novelty calibration: field "${field}" ${reason}`);
    this.name = "NoveltyError";
  }
}

/** Number of stored percentiles: every half percent keeps the tail near 95-100 resolved. */
export const PERCENTILE_POINTS = 201;
export const DEFAULT_THRESHOLD_PERCENTILE = 95;

/** Lower Cholesky factor of a symmetric positive-definite D x D matrix (row-major). */
function cholesky(a: Float64Array, d: number): Float64Array {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j];
      for (let k = 0; k < j; k++) s -= l[i * d + k] * l[j * d + k];
      if (i === j) {
        if (!(s > 0)) throw new Error(`covariance is not positive definite (pivot ${i} is ${s})`);
        l[i * d + i] = Math.sqrt(s);
      } else l[i * d + j] = s / l[j * d + j];
    }
  }
  return l;
}

/** Inverse of a lower-triangular matrix (forward substitution, column by column). */
function invertLower(l: Float64Array, d: number): Float64Array {
  const inv = new Float64Array(d * d);
  for (let c = 0; c < d; c++) {
    for (let i = c; i < d; i++) {
      let s = i === c ? 1 : 0;
      for (let k = c; k < i; k++) s -= l[i * d + k] * inv[k * d + c];
      inv[i * d + c] = s / l[i * d + i];
    }
  }
  return inv;
}

/** Length of one feature: L for mu and logvar, IMAGE_STATS for the image statistics. */
export function featureWidth(f: NoveltyFeature, latentSize: number): number {
  return f === "stats" ? IMAGE_STATS : latentSize;
}

/** Number of low-level image statistics (see imageStats). */
export const IMAGE_STATS = 3;

/**
 * Low-level statistics of one 28x28 image in [0, 1]: log mean intensity and log mean absolute
 * horizontal and vertical differences. Cheap (one pass), and they place blank images (no
 * edges) and noise (edges everywhere) far from any garment, which the latent alone does not.
 */
export function imageStats(px: Float32Array, at: number, out: Float32Array, outAt: number): void {
  let sum = 0, dx = 0, dy = 0;
  for (let y = 0; y < IMAGE_SIZE; y++) {
    for (let x = 0; x < IMAGE_SIZE; x++) {
      const v = px[at + y * 28 + x];
      sum += v;
      if (x > 0) dx += Math.abs(v - px[at + y * 28 + x - 1]);
      if (y > 0) dy += Math.abs(v - px[at + (y - 1) * 28 + x]);
    }
  }
  out[outAt] = Math.log(sum / 784 + 1e-2);
  out[outAt + 1] = Math.log(dx / (28 * 27) + 1e-3);
  out[outAt + 2] = Math.log(dy / (28 * 27) + 1e-3);
}

/** What the features are built from: the serving graph's outputs and the input images. */
export interface FeatureSource {
  mu: Float32Array;
  logvar: Float32Array;
  /** n x 784 floats in [0, 1]: the graph's input. */
  images: Float32Array;
}

/** Builds the n x D feature rows (D = sum of the features' widths). */
export function noveltyFeatures(
  features: readonly NoveltyFeature[],
  src: FeatureSource,
  n: number,
  latentSize: number,
): Float32Array {
  const L = latentSize;
  const D = features.reduce((s, f) => s + featureWidth(f, L), 0);
  const out = new Float32Array(n * D);
  for (let i = 0; i < n; i++) {
    let o = i * D;
    for (const f of features) {
      if (f === "stats") imageStats(src.images, i * 784, out, o);
      else out.set((f === "mu" ? src.mu : src.logvar).subarray(i * L, (i + 1) * L), o);
      o += featureWidth(f, L);
    }
  }
  return out;
}

/**
 * Fits class-conditional Gaussians to n feature rows (n x D) with labels in 0..K-1. A small
 * ridge (1e-6 of the mean variance) keeps a degenerate dimension from breaking the Cholesky.
 */
export function fitClassGaussians(
  x: Float32Array,
  labels: ArrayLike<number>,
  n: number,
  k: number,
  covariance: "tied" | "per-class",
): Pick<NoveltyCalibration, "means" | "whiten" | "offsets" | "covariance"> {
  const d = x.length / n;
  const sums = Array.from({ length: k }, () => new Float64Array(d));
  const counts = new Float64Array(k);
  for (let i = 0; i < n; i++) {
    const c = labels[i];
    counts[c]++;
    for (let j = 0; j < d; j++) sums[c][j] += x[i * d + j];
  }
  counts.forEach((c, i) => {
    if (c < 2) throw new Error(`class ${i} has ${c} fit images; every class needs at least 2`);
  });
  const means = sums.map((s, c) => Array.from(s, (v) => v / counts[c]));
  const covs = Array.from({ length: covariance === "tied" ? 1 : k }, () => new Float64Array(d * d));
  const dev = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const c = labels[i], cov = covs[covariance === "tied" ? 0 : c];
    for (let j = 0; j < d; j++) dev[j] = x[i * d + j] - means[c][j];
    for (let a = 0; a < d; a++) for (let b = 0; b <= a; b++) cov[a * d + b] += dev[a] * dev[b];
  }
  const whiten: number[][][] = [], logdets: number[] = [];
  covs.forEach((cov, ci) => {
    const m = covariance === "tied" ? n - k : counts[ci] - 1;
    let trace = 0;
    for (let a = 0; a < d; a++) {
      for (let b = 0; b <= a; b++) cov[a * d + b] = cov[b * d + a] = cov[a * d + b] / m;
      trace += cov[a * d + a];
    }
    for (let a = 0; a < d; a++) cov[a * d + a] += 1e-6 * trace / d;
    const l = cholesky(cov, d);
    let logdet = 0;
    for (let a = 0; a < d; a++) logdet += 2 * Math.log(l[a * d + a]);
    const w = invertLower(l, d);
    whiten.push(Array.from({ length: d }, (_, r) => Array.from(w.subarray(r * d, (r + 1) * d))));
    logdets.push(logdet);
  });
  const offsets = covariance === "tied" ? means.map(() => 0) : logdets;
  return { means, whiten, offsets, covariance };
}

/** Flattened parameters for the per-image loop (no nested arrays in the hot path). */
export interface NoveltyScorer {
  readonly dims: number;
  score(row: Float32Array, at: number): number;
}

/** Prepares calibration parameters for scoring many rows. */
export function noveltyScorer(
  cal: Pick<NoveltyCalibration, "means" | "whiten" | "offsets">,
): NoveltyScorer {
  const k = cal.means.length, d = cal.means[0].length;
  const means = Float64Array.from(cal.means.flat());
  const whiten = cal.whiten.map((w) => Float64Array.from(w.flat()));
  const offsets = Float64Array.from(cal.offsets);
  const dev = new Float64Array(d);
  return {
    dims: d,
    score(row, at) {
      let best = Infinity;
      for (let c = 0; c < k; c++) {
        for (let j = 0; j < d; j++) dev[j] = row[at + j] - means[c * d + j];
        const w = whiten.length === 1 ? whiten[0] : whiten[c];
        let s = offsets[c];
        // W is lower triangular: row r only needs the first r + 1 deviations.
        for (let r = 0; r < d; r++) {
          let t = 0;
          for (let j = 0; j <= r; j++) t += w[r * d + j] * dev[j];
          s += t * t;
        }
        if (s < best) best = s;
      }
      return best;
    },
  };
}

/** Scores n rows of features (n x D). */
export function scoreRows(scorer: NoveltyScorer, x: Float32Array, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = scorer.score(x, i * scorer.dims);
  return out;
}

/** The q-th percentile (0..100) of ascending `sorted`, linearly interpolated. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const pos = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** The percentile table of held-out scores: PERCENTILE_POINTS values from 0 to 100. */
export function percentileTable(scores: ArrayLike<number>): number[] {
  const sorted = Float64Array.from(scores).sort();
  return Array.from(
    { length: PERCENTILE_POINTS },
    (_, i) => quantile(sorted, (100 * i) / (PERCENTILE_POINTS - 1)),
  );
}

/** Where `score` falls in the table, in percent (0..100), interpolated between entries. */
export function percentileOf(table: readonly number[], score: number): number {
  const n = table.length;
  if (!(score > table[0])) return 0;
  if (score >= table[n - 1]) return 100;
  let lo = 0, hi = n - 1; // table[lo] < score <= table[hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (table[mid] < score) lo = mid;
    else hi = mid;
  }
  const span = table[hi] - table[lo];
  const frac = span > 0 ? (score - table[lo]) / span : 1;
  return (100 * (lo + frac)) / (n - 1);
}

/** The score at percentile q of the table (the serve-time threshold for `--novelty-percentile`). */
export function thresholdAt(table: readonly number[], q: number): number {
  return quantile(table, q);
}

type Obj = Record<string, unknown>;

function finiteArray(v: unknown, field: string, length?: number): number[] {
  if (!Array.isArray(v)) throw new NoveltyError(field, "must be an array");
  if (length !== undefined && v.length !== length) {
    throw new NoveltyError(field, `must have ${length} entries, got ${v.length}`);
  }
  v.forEach((x, i) => {
    if (typeof x !== "number" || !Number.isFinite(x)) {
      throw new NoveltyError(`${field}[${i}]`, `must be a finite number, got ${JSON.stringify(x)}`);
    }
  });
  return v as number[];
}

function matrix(v: unknown, field: string, rows: number, cols: number): void {
  if (!Array.isArray(v) || v.length !== rows) {
    throw new NoveltyError(field, `must be ${rows} rows`);
  }
  v.forEach((r, i) => finiteArray(r, `${field}[${i}]`, cols));
}

/**
 * Validates a parsed `novelty` section against the bundle's K labels and latent size L;
 * `prefix` names the manifest field in errors (e.g. "novelty.").
 */
export function validateNovelty(
  raw: unknown,
  k: number,
  latentSize: number,
  prefix = "novelty.",
): NoveltyCalibration {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new NoveltyError(prefix.slice(0, -1), "must be an object");
  }
  const o = raw as Obj;
  if (o.method !== "class-gaussian-mahalanobis") {
    throw new NoveltyError(
      `${prefix}method`,
      `must be "class-gaussian-mahalanobis", got ${JSON.stringify(o.method)}`,
    );
  }
  const feats = o.features;
  if (
    !Array.isArray(feats) || feats.length < 1 ||
    feats.some((f) => f !== "mu" && f !== "logvar" && f !== "stats") ||
    new Set(feats).size !== feats.length
  ) {
    throw new NoveltyError(
      `${prefix}features`,
      `must list "mu", "logvar", "stats", each at most once`,
    );
  }
  const d = (feats as NoveltyFeature[]).reduce((s, f) => s + featureWidth(f, latentSize), 0);
  if (o.covariance !== "tied" && o.covariance !== "per-class") {
    throw new NoveltyError(`${prefix}covariance`, `must be "tied" or "per-class"`);
  }
  matrix(o.means, `${prefix}means`, k, d);
  const nw = o.covariance === "tied" ? 1 : k;
  if (!Array.isArray(o.whiten) || o.whiten.length !== nw) {
    throw new NoveltyError(`${prefix}whiten`, `must hold ${nw} matrices of ${d}x${d}`);
  }
  o.whiten.forEach((w, i) => matrix(w, `${prefix}whiten[${i}]`, d, d));
  finiteArray(o.offsets, `${prefix}offsets`, k);
  const table = finiteArray(o.percentiles, `${prefix}percentiles`);
  if (table.length < 2) throw new NoveltyError(`${prefix}percentiles`, "must hold at least 2");
  for (let i = 1; i < table.length; i++) {
    if (table[i] < table[i - 1]) {
      throw new NoveltyError(`${prefix}percentiles[${i}]`, "must not be below the one before");
    }
  }
  const th = o.threshold as Obj | undefined;
  if (typeof th !== "object" || th === null) {
    throw new NoveltyError(`${prefix}threshold`, "is missing");
  }
  const [p, s] = finiteArray([th.percentile, th.score], `${prefix}threshold.{percentile,score}`);
  if (p < 0 || p > 100) {
    throw new NoveltyError(`${prefix}threshold.percentile`, "must be in 0..100");
  }
  void s;
  for (const key of ["fit", "heldOut"]) {
    const v = o[key] as Obj | undefined;
    if (typeof v !== "object" || v === null || typeof v.images !== "number" || v.images < 1) {
      throw new NoveltyError(`${prefix}${key}`, "must be {images >= 1, source}");
    }
  }
  return o as unknown as NoveltyCalibration;
}
