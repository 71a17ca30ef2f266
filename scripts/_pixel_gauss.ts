/**
 * A pixel-space baseline of the novelty evaluation (not served): a per-pixel Gaussian of the
 * training images, scoring an image by its mean squared standardised pixel deviation.
 */
/** Per-pixel mean and 1 / (variance + floor) of n images (n x 784 floats in [0, 1]). */
export function fitPixelGaussian(
  x: Float32Array,
  n: number,
  floor = PIXEL_VARIANCE_FLOOR,
): { mean: number[]; invVar: number[] } {
  const p = x.length / n;
  const sum = new Float64Array(p), sq = new Float64Array(p);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < p; j++) {
      const v = x[i * p + j];
      sum[j] += v;
      sq[j] += v * v;
    }
  }
  const mean = Array.from(sum, (v) => v / n);
  const invVar = Array.from(sq, (v, j) => 1 / (Math.max(0, v / n - mean[j] ** 2) + floor));
  return { mean, invVar };
}

/** Mean squared standardised pixel deviation of each of n images (n x 784). */
export function pixelScores(
  g: { mean: number[]; invVar: number[] },
  x: Float32Array,
  n: number,
): Float64Array {
  const p = g.mean.length, out = new Float64Array(n);
  const mean = Float64Array.from(g.mean), inv = Float64Array.from(g.invVar);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < p; j++) {
      const d = x[i * p + j] - mean[j];
      s += d * d * inv[j];
    }
    out[i] = s / p;
  }
  return out;
}

/** Variance floor of the pixel term: a pixel that is always 0 in training is not infinitely sure. */
export const PIXEL_VARIANCE_FLOOR = 0.01;
