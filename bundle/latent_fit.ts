/**
 * Fitting a latent translation (latent_translation.ts) between two models from their mu on
 * the same held-out images, and measuring it. Three maps are fitted on one part of the images
 * and judged on the rest, so the recorded quality is out-of-sample:
 *   affine      least squares y = A x + b (ridge 1e-6 keeps it solvable on degenerate data)
 *   procrustes  y = s Q x + b with Q orthogonal (rotation/reflection), one scale s; needs
 *               equal sizes, and cannot distort the space, so it preserves neighbourhoods
 *               exactly whenever the two spaces differ by a rigid motion and a scale
 *   rbf         affine plus Gaussian radial basis functions (fitRbf): non-linear
 * Quality: R² over all output dimensions, and the neighbour share: for each evaluation image,
 * the fraction of the k nearest neighbours (among the fresh latents of the other evaluation
 * images) of its translated old latent that are also among the k nearest neighbours of its
 * fresh latent. That is the question a user with stored latents asks: does my old latent,
 * translated, find what a fresh one finds?
 */
import { nearest } from "../common/knn.ts";
import {
  type KernelPart,
  type MapMethod,
  type MapQuality,
  translate,
} from "./latent_translation.ts";

export interface FittedMap {
  method: MapMethod;
  matrix: number[][];
  bias: number[];
  kernel?: KernelPart;
}

type Mat = Float64Array[];

function zeros(r: number, c: number): Mat {
  return Array.from({ length: r }, () => new Float64Array(c));
}

function means(x: ArrayLike<number>, n: number, d: number): Float64Array {
  const m = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) m[j] += x[i * d + j] / n;
  return m;
}

/** Centred cross products: sum over i of (x_i - mx)(y_i - my)^T, a dx x dy matrix. */
function cross(x: ArrayLike<number>, dx: number, y: ArrayLike<number>, dy: number, n: number): Mat {
  const mx = means(x, n, dx), my = means(y, n, dy);
  const c = zeros(dx, dy);
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < dx; a++) {
      const xa = x[i * dx + a] - mx[a];
      const row = c[a];
      for (let b = 0; b < dy; b++) row[b] += xa * (y[i * dy + b] - my[b]);
    }
  }
  return c;
}

/** Solves S W = R for symmetric positive definite S (Cholesky); R has several columns. */
function solveSpd(s: Mat, r: Mat): Mat {
  const n = s.length;
  const l = zeros(n, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let v = s[i][j];
      for (let k = 0; k < j; k++) v -= l[i][k] * l[j][k];
      l[i][j] = i === j ? Math.sqrt(Math.max(v, 1e-300)) : v / l[j][j];
    }
  }
  const cols = r[0].length;
  const w = zeros(n, cols);
  for (let c = 0; c < cols; c++) {
    const z = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let v = r[i][c];
      for (let k = 0; k < i; k++) v -= l[i][k] * z[k];
      z[i] = v / l[i][i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let v = z[i];
      for (let k = i + 1; k < n; k++) v -= l[k][i] * w[k][c];
      w[i][c] = v / l[i][i];
    }
  }
  return w;
}

/** Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations. */
function symmetricEigen(a0: Mat): { values: Float64Array; vectors: Mat } {
  const n = a0.length;
  const a = a0.map((r) => Float64Array.from(r));
  const v = zeros(n, n);
  for (let i = 0; i < n; i++) v[i][i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p][q] ** 2;
    if (off < 1e-22) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(a[p][q]) < 1e-300) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k][p], vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from(a.map((r, i) => r[i])), vectors: v };
}

function biasFor(m: number[][], mx: Float64Array, my: Float64Array): number[] {
  return m.map((row, r) => my[r] - row.reduce((s, w, c) => s + w * mx[c], 0));
}

/** Least-squares affine map from x (n x dx) to y (n x dy). */
export function fitAffine(
  x: ArrayLike<number>,
  dx: number,
  y: ArrayLike<number>,
  dy: number,
  n: number,
): FittedMap {
  const sxx = cross(x, dx, x, dx, n);
  const sxy = cross(x, dx, y, dy, n);
  let trace = 0;
  for (let i = 0; i < dx; i++) trace += sxx[i][i];
  for (let i = 0; i < dx; i++) sxx[i][i] += 1e-6 * (trace / dx + 1e-12);
  const w = solveSpd(sxx, sxy); // dx x dy: y - my = (x - mx) W
  const matrix = Array.from(
    { length: dy },
    (_, r) => Array.from({ length: dx }, (_, c) => w[c][r]),
  );
  return { method: "affine", matrix, bias: biasFor(matrix, means(x, n, dx), means(y, n, dy)) };
}

/** Orthogonal Procrustes with one scale and a translation; x and y must have equal sizes. */
export function fitProcrustes(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  d: number,
  n: number,
): FittedMap {
  const m = cross(x, d, y, d, n); // M = Xc^T Yc = U S V^T; Q = U V^T = M (M^T M)^(-1/2)
  const mtm = zeros(d, d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += m[k][i] * m[k][j];
      mtm[i][j] = s;
    }
  }
  const { values, vectors } = symmetricEigen(mtm);
  const top = Math.max(...values);
  const inv = values.map((v) => (v > top * 1e-20 ? 1 / Math.sqrt(v) : 0));
  const isqrt = zeros(d, d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += vectors[i][k] * inv[k] * vectors[j][k];
      isqrt[i][j] = s;
    }
  }
  const q = zeros(d, d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += m[i][k] * isqrt[k][j];
      q[i][j] = s;
    }
  }
  // s = trace(Q^T M) / ||Xc||^2; the map is y = s Q^T (x - mx) + my for column vectors.
  let num = 0, den = 0;
  const sxx = cross(x, d, x, d, n);
  for (let i = 0; i < d; i++) {
    den += sxx[i][i];
    for (let k = 0; k < d; k++) num += q[k][i] * m[k][i];
  }
  const scale = den > 0 ? num / den : 1;
  const matrix = Array.from(
    { length: d },
    (_, r) => Array.from({ length: d }, (_, c) => scale * q[c][r]),
  );
  return { method: "procrustes", matrix, bias: biasFor(matrix, means(x, n, d), means(y, n, d)) };
}

/** Applies a fitted map to n rows. */
export function applyMap(f: FittedMap, x: ArrayLike<number>, n: number): Float32Array {
  return translate(f, x, n);
}

/** [x, phi(x)] per row: the inputs an rbf map is linear in. */
function rbfFeatures(
  x: ArrayLike<number>,
  d: number,
  n: number,
  centres: Float32Array,
  gamma: number,
) {
  const m = centres.length / d, w = d + m;
  const f = new Float64Array(n * w);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) f[i * w + j] = x[i * d + j];
    for (let c = 0; c < m; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (x[i * d + j] - centres[c * d + j]) ** 2;
      f[i * w + d + c] = Math.exp(-gamma * s);
    }
  }
  return f;
}

/**
 * Affine plus Gaussian radial basis functions on `m` centres (the first m inputs), fitted by
 * least squares: bends the map where the two spaces are not linearly related. gamma is one
 * over the inputs' total variance, so a basis function spans a typical distance between
 * latents.
 */
export function fitRbf(
  x: ArrayLike<number>,
  dx: number,
  y: ArrayLike<number>,
  dy: number,
  n: number,
  m: number,
): FittedMap {
  const centres = Float32Array.from({ length: m * dx }, (_, i) => x[i]);
  const mx = means(x, n, dx);
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dx; j++) total += (x[i * dx + j] - mx[j]) ** 2 / n;
  }
  const gamma = 1 / Math.max(total, 1e-12);
  const f = fitAffine(rbfFeatures(x, dx, n, centres, gamma), dx + m, y, dy, n);
  const round = (v: number) => +v.toPrecision(9);
  return {
    method: "rbf",
    matrix: f.matrix.map((r) => r.slice(0, dx)),
    bias: f.bias,
    kernel: {
      gamma,
      centres: Array.from(
        { length: m },
        (_, c) => Array.from(centres.subarray(c * dx, (c + 1) * dx), round),
      ),
      weights: f.matrix.map((r) => r.slice(dx)),
    },
  };
}

/** R² of predictions p against truth y (n x d), pooled over dimensions. */
export function rSquared(p: ArrayLike<number>, y: ArrayLike<number>, d: number, n: number): number {
  const my = means(y, n, d);
  let res = 0, tot = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      res += (y[i * d + j] - p[i * d + j]) ** 2;
      tot += (y[i * d + j] - my[j]) ** 2;
    }
  }
  return tot > 0 ? 1 - res / tot : 0;
}

/**
 * Mean share of the k nearest neighbours found by `queries` (n x d) among the rows of `fresh`
 * (n x d, the query's own row excluded) that are also the k nearest neighbours of the fresh row.
 */
export function neighbourShare(
  queries: Float32Array,
  fresh: Float32Array,
  d: number,
  n: number,
  k = 10,
): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    const skip = (r: number) => r === i;
    const truth = new Set(nearest(fresh, d, n, fresh.subarray(i * d, (i + 1) * d), k, skip).index);
    const got = nearest(fresh, d, n, queries.subarray(i * d, (i + 1) * d), k, skip).index;
    let hit = 0;
    for (const r of got) if (truth.has(r)) hit++;
    total += hit / Math.max(1, truth.size);
  }
  return n > 0 ? total / n : 0;
}

export interface TranslationFit {
  best: FittedMap & MapQuality;
  tried: MapQuality[];
  untranslatedNeighbours: number | null;
  fitCount: number;
  evalCount: number;
}

/**
 * Fits every applicable map from `from` (n x dx) to `to` (n x dy) on the first `fitShare` of
 * the rows and measures each on the rest; the best neighbour share wins (R² breaks ties).
 */
export function fitTranslation(
  from: Float32Array,
  dx: number,
  to: Float32Array,
  dy: number,
  n: number,
  opts: { fitShare?: number; k?: number; centres?: number } = {},
): TranslationFit {
  const fitCount = Math.max(Math.max(dx, dy) + 2, Math.floor(n * (opts.fitShare ?? 0.5)));
  const evalCount = n - fitCount;
  if (evalCount < (opts.k ?? 10) + 1) {
    throw new Error(`fitTranslation(): ${n} images leave ${evalCount} to evaluate on; need more`);
  }
  const k = opts.k ?? 10;
  const xf = from.subarray(0, fitCount * dx), yf = to.subarray(0, fitCount * dy);
  const xe = from.subarray(fitCount * dx), ye = to.subarray(fitCount * dy);
  const maps = [fitAffine(xf, dx, yf, dy, fitCount)];
  if (dx === dy) maps.push(fitProcrustes(xf, yf, dx, fitCount));
  // 1200 centres for a 16-d latent: measured best on a real retrain (docs/latents.md); fewer
  // for smaller latents (75 per dimension), and a quarter of the fitting images at most, so
  // the least squares stay well determined and the fit takes seconds, not minutes.
  const m = Math.min(opts.centres ?? 75 * dx, 1200, Math.floor(fitCount / 4));
  if (m >= 8) maps.push(fitRbf(xf, dx, yf, dy, fitCount, m));
  const scored = maps.map((m) => {
    const p = applyMap(m, xe, evalCount);
    return {
      ...m,
      r2: rSquared(p, ye, dy, evalCount),
      neighbours: neighbourShare(p, ye, dy, evalCount, k),
    };
  });
  scored.sort((a, b) => b.neighbours - a.neighbours || b.r2 - a.r2);
  return {
    best: scored[0],
    tried: scored.map(({ method, r2, neighbours }) => ({ method, r2, neighbours })),
    untranslatedNeighbours: dx === dy ? neighbourShare(xe, ye, dx, evalCount, k) : null,
    fitCount,
    evalCount,
  };
}
