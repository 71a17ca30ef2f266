/**
 * Exact k-nearest-neighbour search over latent vectors stored row-major in one Float32Array
 * (squared Euclidean distance, a linear scan). At the sizes this project serves (tens of
 * thousands of vectors of a few dozen dimensions) a scan is a few million multiply-adds, which
 * is fast enough and exact, so no approximate index is needed. Used to measure how well a
 * latent translation preserves neighbourhoods (bundle/) and to answer similarity queries
 * (serve/gallery/).
 */

export interface Neighbours {
  /** Row indices, nearest first. */
  index: Int32Array;
  /** Euclidean distances, ascending. */
  distance: Float32Array;
}

/**
 * The k rows of `data` (n rows of `dim` values) nearest to `query`. Rows for which `skip`
 * returns true are left out (e.g. the query's own row, or rows not valid right now).
 */
export function nearest(
  data: Float32Array,
  dim: number,
  n: number,
  query: ArrayLike<number>,
  k: number,
  skip?: (row: number) => boolean,
): Neighbours {
  const kk = Math.max(0, Math.min(k, n));
  // Sorted insertion into k slots: k is small (10), so this beats a heap.
  const bestI = new Int32Array(kk).fill(-1);
  const bestD = new Float64Array(kk).fill(Infinity);
  let worst = Infinity;
  let filled = 0;
  for (let r = 0; r < n; r++) {
    if (skip && skip(r)) continue;
    const o = r * dim;
    let d = 0;
    for (let j = 0; j < dim; j++) {
      const t = data[o + j] - query[j];
      d += t * t;
      if (d >= worst) break;
    }
    if (d >= worst && filled === kk) continue;
    let p = filled < kk ? filled++ : kk - 1;
    while (p > 0 && bestD[p - 1] > d) {
      bestD[p] = bestD[p - 1];
      bestI[p] = bestI[p - 1];
      p--;
    }
    bestD[p] = d;
    bestI[p] = r;
    if (filled === kk) worst = bestD[kk - 1];
  }
  const index = bestI.slice(0, filled);
  const distance = new Float32Array(filled);
  for (let i = 0; i < filled; i++) distance[i] = Math.sqrt(bestD[i]);
  return { index, distance };
}
