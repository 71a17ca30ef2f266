/**
 * Nearest neighbours over latent vectors, in plain TypeScript: the standardisation the
 * few-label heads share, a brute-force k-nearest-neighbour search (squared Euclidean distance,
 * a typed-array top-k per query), and the kNN classifier on the labelled latents alone with its
 * k chosen by leave-one-out on those labels. The graph heads built on the same search live in
 * ./semi_supervised.ts.
 */
import { NUM_CLASSES } from "../common/labels.ts";

/**
 * Per-dimension centring and scaling fitted on unlabelled latents. Dimensions whose mean barely
 * varies over the data are dropped rather than scaled up: a VAE's collapsed ("inactive") units
 * carry no information about the image (Burda et al. 2016 count a unit active when the variance
 * of its mean over the data exceeds 0.01), and scaling them to unit variance would let their
 * noise dominate every distance.
 */
export interface Standardiser {
  /** Dimensions kept, in order. */
  keep: Int32Array;
  mean: Float32Array;
  /** Reciprocal standard deviation of each kept dimension. */
  inv: Float32Array;
}

export const ACTIVE_VARIANCE = 0.01;

export function fitStandardiser(
  x: Float32Array,
  n: number,
  dim: number,
  minVariance = ACTIVE_VARIANCE,
): Standardiser {
  if (n < 2) throw new RangeError(`a standardiser needs at least 2 rows, got ${n}`);
  const sum = new Float64Array(dim), sq = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dim; d++) {
      const v = x[i * dim + d];
      sum[d] += v;
      sq[d] += v * v;
    }
  }
  const keep: number[] = [], mean: number[] = [], inv: number[] = [];
  for (let d = 0; d < dim; d++) {
    const m = sum[d] / n;
    const variance = Math.max(0, sq[d] / n - m * m);
    if (variance > minVariance) keep.push(d), mean.push(m), inv.push(1 / Math.sqrt(variance));
  }
  // With every unit inactive, distances would all be zero: keep everything unscaled instead.
  if (keep.length === 0) {
    return {
      keep: Int32Array.from({ length: dim }, (_, d) => d),
      mean: new Float32Array(dim).map((_, d) => sum[d] / n),
      inv: new Float32Array(dim).fill(1),
    };
  }
  return {
    keep: Int32Array.from(keep),
    mean: Float32Array.from(mean),
    inv: Float32Array.from(inv),
  };
}

/** Rows of x mapped through a standardiser: [n * keep.length] row-major. */
export function standardise(
  x: Float32Array,
  n: number,
  dim: number,
  s: Standardiser,
): Float32Array {
  const w = s.keep.length;
  const out = new Float32Array(n * w);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < w; j++) out[i * w + j] = (x[i * dim + s.keep[j]] - s.mean[j]) * s.inv[j];
  }
  return out;
}

/** The k nearest base rows of each query, nearest first: indices and squared distances. */
export interface Neighbours {
  k: number;
  count: number;
  index: Int32Array;
  dist2: Float32Array;
}

/** Queries per pass over the base rows, and base rows per chunk of dot products. */
const QUERY_BLOCK = 4;
const BASE_CHUNK = 1024;

/**
 * Brute-force k nearest neighbours of every query row among the base rows. With `selfQuery`
 * the queries are the base itself and a row is never its own neighbour. Distances come from
 * |q|^2 + |b|^2 - 2 q.b, clamped at 0 against rounding. Four queries share each pass over a
 * chunk of base rows, so each base value is loaded once per four dot products.
 */
export function knnSearch(
  query: Float32Array,
  nq: number,
  base: Float32Array,
  nb: number,
  dim: number,
  k: number,
  selfQuery = false,
): Neighbours {
  const avail = nb - (selfQuery ? 1 : 0);
  if (k < 1 || k > avail) {
    throw new RangeError(`cannot find ${k} neighbours among ${avail} base rows`);
  }
  const bn = rowNorms(base, nb, dim);
  const qn = rowNorms(query, nq, dim);
  const index = new Int32Array(nq * k).fill(-1), dist2 = new Float32Array(nq * k).fill(Infinity);
  const dots = new Float64Array(BASE_CHUNK * QUERY_BLOCK);
  const q = new Float64Array(QUERY_BLOCK * dim);
  for (let i0 = 0; i0 < nq; i0 += QUERY_BLOCK) {
    const m = Math.min(QUERY_BLOCK, nq - i0);
    // A short last block repeats its last query; only the real ones are kept.
    for (let b = 0; b < QUERY_BLOCK; b++) {
      const src = (i0 + Math.min(b, m - 1)) * dim;
      for (let d = 0; d < dim; d++) q[b * dim + d] = query[src + d];
    }
    for (let j0 = 0; j0 < nb; j0 += BASE_CHUNK) {
      const c = Math.min(BASE_CHUNK, nb - j0);
      dots4(q, base, j0, c, dim, dots);
      for (let b = 0; b < m; b++) {
        const i = i0 + b;
        insertTopK(dots, b, j0, c, qn[i], bn, selfQuery ? i : -1, index, dist2, i * k, k);
      }
    }
  }
  for (let i = 0; i < dist2.length; i++) dist2[i] = Math.max(0, dist2[i]);
  return { k, count: nq, index, dist2 };
}

function rowNorms(x: Float32Array, n: number, dim: number): Float64Array {
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += x[j * dim + d] * x[j * dim + d];
    out[j] = s;
  }
  return out;
}

/** dots[r * 4 + b] = q_b . base[j0 + r] for the four queries in q and c base rows. */
function dots4(
  q: Float64Array,
  base: Float32Array,
  j0: number,
  c: number,
  dim: number,
  dots: Float64Array,
): void {
  const a1 = dim, a2 = 2 * dim, a3 = 3 * dim;
  for (let r = 0; r < c; r++) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const o = (j0 + r) * dim;
    for (let d = 0; d < dim; d++) {
      const v = base[o + d];
      s0 += q[d] * v;
      s1 += q[a1 + d] * v;
      s2 += q[a2 + d] * v;
      s3 += q[a3 + d] * v;
    }
    const w = r * 4;
    dots[w] = s0, dots[w + 1] = s1, dots[w + 2] = s2, dots[w + 3] = s3;
  }
}

/** Folds one chunk of query b's distances into its sorted top-k at index/dist2[at..at+k). */
function insertTopK(
  dots: Float64Array,
  b: number,
  j0: number,
  c: number,
  qn: number,
  bn: Float64Array,
  self: number,
  index: Int32Array,
  dist2: Float32Array,
  at: number,
  k: number,
): void {
  let worst = dist2[at + k - 1];
  for (let r = 0; r < c; r++) {
    const j = j0 + r;
    const dd = qn + bn[j] - 2 * dots[r * 4 + b];
    if (dd >= worst || j === self) continue;
    let p = k - 1;
    while (p > 0 && dist2[at + p - 1] > dd) {
      dist2[at + p] = dist2[at + p - 1];
      index[at + p] = index[at + p - 1];
      p--;
    }
    dist2[at + p] = dd;
    index[at + p] = j;
    worst = dist2[at + k - 1];
  }
}

/**
 * Majority vote among each query's first k neighbours (k <= nb.k), ties going to the class
 * of the nearest tied neighbour. `labels[j]` is the class of base row j.
 */
export function voteNeighbours(
  nb: Neighbours,
  labels: ArrayLike<number>,
  k = nb.k,
  classes = NUM_CLASSES,
): Int32Array {
  const out = new Int32Array(nb.count);
  const votes = new Int32Array(classes);
  for (let i = 0; i < nb.count; i++) {
    votes.fill(0);
    for (let r = 0; r < k; r++) votes[labels[nb.index[i * nb.k + r]]]++;
    let best = -1, bestVotes = -1;
    for (let r = 0; r < k; r++) {
      const c = labels[nb.index[i * nb.k + r]];
      if (votes[c] > bestVotes) best = c, bestVotes = votes[c];
    }
    out[i] = best;
  }
  return out;
}

/** Candidate k of the labelled-only kNN; leave-one-out on the labelled set picks among them. */
export const KNN_CANDIDATES = [1, 3, 5, 7, 9, 15, 25];

/**
 * k for the kNN classifier by leave-one-out accuracy on the labelled rows alone (the smallest
 * k among equals): no test image and no label beyond the N given decides it.
 */
export function chooseK(
  x: Float32Array,
  labels: ArrayLike<number>,
  n: number,
  dim: number,
  candidates = KNN_CANDIDATES,
): { k: number; looAccuracy: number } {
  const ks = candidates.filter((k) => k <= n - 1);
  if (ks.length === 0) throw new RangeError(`leave-one-out needs at least 2 labelled rows`);
  const nb = knnSearch(x, n, x, n, dim, Math.max(...ks), true);
  let best = { k: ks[0], looAccuracy: -1 };
  for (const k of ks) {
    const pred = voteNeighbours(nb, labels, k);
    let ok = 0;
    for (let i = 0; i < n; i++) if (pred[i] === labels[i]) ok++;
    if (ok / n > best.looAccuracy) best = { k, looAccuracy: ok / n };
  }
  return best;
}
