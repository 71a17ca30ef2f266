/**
 * Label spreading over frozen latents (Zhou et al. 2004, "Learning with local and global
 * consistency"): a symmetric kNN affinity graph over the labelled and the unlabelled training
 * latents, S = D^-1/2 W D^-1/2, and the labels spread to F* = (1 - alpha)(I - alpha S)^-1 Y,
 * the fixed point of F <- alpha S F + (1 - alpha) Y, solved by conjugate gradients. Test images
 * are classified inductively from their nearest training nodes' spread labels, so the test set
 * is never a graph node and nothing is fitted on it. The neighbour search is ./knn.ts's.
 */
import { NUM_CLASSES } from "../common/labels.ts";
import type { Neighbours } from "./knn.ts";

/**
 * Hyper-parameters fixed by reasoning, not by test accuracy: 10 neighbours per node (Zhou et
 * al. and most of the graph-SSL literature use 5–20; fewer leaves nodes of rare modes cut off,
 * more links across class boundaries), alpha 0.99 (Zhou et al.'s value: labels travel far,
 * which is what 10 labels per class need), the Gaussian width from the data (the mean squared
 * distance to the k-th neighbour), and class-mass normalisation to the labelled class shares
 * (Zhu et al. 2003), since the labelled subsets are stratified and spreading otherwise favours
 * classes whose labelled points sit in dense regions.
 */
export interface SpreadConfig {
  k: number;
  alpha: number;
  /** Conjugate-gradient iterations at most, and the relative residual that ends them. */
  maxIterations: number;
  tolerance: number;
}

export const SPREAD_CONFIG: Readonly<SpreadConfig> = Object.freeze({
  k: 10,
  alpha: 0.99,
  maxIterations: 200,
  tolerance: 1e-6,
});

/** Symmetric sparse affinity in CSR form, with the Gaussian width it used. */
export interface Graph {
  n: number;
  rowStart: Int32Array;
  col: Int32Array;
  weight: Float32Array;
  sigma2: number;
}

/** Gaussian width of a neighbour list: the mean squared distance to the last neighbour. */
export function kthDistance2(nb: Neighbours): number {
  let s = 0;
  for (let i = 0; i < nb.count; i++) s += nb.dist2[i * nb.k + nb.k - 1];
  return Math.max(1e-12, s / nb.count);
}

/**
 * W_ij = exp(-d_ij^2 / sigma^2) when j is among i's k nearest or i among j's (the larger
 * weight when both), zero on the diagonal. `nb` must be a self-query over the n nodes.
 */
export function affinityGraph(nb: Neighbours): Graph {
  const n = nb.count, k = nb.k;
  const sigma2 = kthDistance2(nb);
  const degree = new Int32Array(n);
  for (let e = 0; e < n * k; e++) degree[Math.floor(e / k)]++, degree[nb.index[e]]++;
  const start = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) start[i + 1] = start[i] + degree[i];
  const fill = start.slice(0, n);
  const col = new Int32Array(start[n]), w = new Float32Array(start[n]);
  for (let e = 0; e < n * k; e++) {
    const i = Math.floor(e / k), j = nb.index[e];
    const v = Math.exp(-nb.dist2[e] / sigma2);
    col[fill[i]] = j, w[fill[i]++] = v;
    col[fill[j]] = i, w[fill[j]++] = v;
  }
  // Merge duplicate (i, j) entries (mutual neighbours), keeping the larger weight.
  const rowStart = new Int32Array(n + 1);
  const outCol: number[] = [], outW: number[] = [];
  const order: number[] = [];
  for (let i = 0; i < n; i++) {
    order.length = 0;
    for (let e = start[i]; e < start[i + 1]; e++) order.push(e);
    order.sort((a, b) => col[a] - col[b]);
    for (const e of order) {
      const last = outCol.length - 1;
      if (last >= rowStart[i] && outCol[last] === col[e]) outW[last] = Math.max(outW[last], w[e]);
      else outCol.push(col[e]), outW.push(w[e]);
    }
    rowStart[i + 1] = outCol.length;
  }
  return { n, rowStart, col: Int32Array.from(outCol), weight: Float32Array.from(outW), sigma2 };
}

/** y = (I - alpha S) x for C columns at once (x, y: [n * C] row-major). */
function applyA(
  g: Graph,
  dInv: Float64Array,
  alpha: number,
  C: number,
  x: Float64Array,
  y: Float64Array,
) {
  for (let i = 0; i < g.n; i++) {
    for (let c = 0; c < C; c++) y[i * C + c] = x[i * C + c];
    for (let e = g.rowStart[i]; e < g.rowStart[i + 1]; e++) {
      const j = g.col[e], s = alpha * g.weight[e] * dInv[i] * dInv[j];
      for (let c = 0; c < C; c++) y[i * C + c] -= s * x[j * C + c];
    }
  }
}

/**
 * Spread labels over the graph: node `nodes[m]` carries class `labels[m]`; returns F* as
 * [n * classes] row-major, class-mass normalised to the labelled class shares. (I - alpha S)
 * is symmetric positive definite for alpha < 1, so conjugate gradients solve each column.
 */
export function spreadLabels(
  g: Graph,
  nodes: ArrayLike<number>,
  labels: ArrayLike<number>,
  o: SpreadConfig = SPREAD_CONFIG,
  classes = NUM_CLASSES,
): { scores: Float64Array; iterations: number } {
  const n = g.n, C = classes;
  const dInv = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let e = g.rowStart[i]; e < g.rowStart[i + 1]; e++) s += g.weight[e];
    dInv[i] = s > 0 ? 1 / Math.sqrt(s) : 0;
  }
  const b = new Float64Array(n * C);
  const share = new Float64Array(C);
  for (let m = 0; m < nodes.length; m++) {
    b[nodes[m] * C + labels[m]] = 1 - o.alpha, share[labels[m]]++;
  }
  const x = new Float64Array(n * C), r = b.slice(), p = b.slice(), ap = new Float64Array(n * C);
  const rr = columnDots(r, r, C), bNorm = rr.map(Math.sqrt);
  let it = 0;
  for (; it < o.maxIterations; it++) {
    if (rr.every((v, c) => Math.sqrt(v) <= o.tolerance * Math.max(bNorm[c], 1e-30))) break;
    applyA(g, dInv, o.alpha, C, p, ap);
    const pAp = columnDots(p, ap, C);
    const a = rr.map((v, c) => (pAp[c] > 0 ? v / pAp[c] : 0));
    for (let i = 0; i < n * C; i++) x[i] += a[i % C] * p[i], r[i] -= a[i % C] * ap[i];
    const rrNew = columnDots(r, r, C);
    const beta = rrNew.map((v, c) => (rr[c] > 0 ? v / rr[c] : 0));
    for (let i = 0; i < n * C; i++) p[i] = r[i] + beta[i % C] * p[i];
    rr.set(rrNew);
  }
  return { scores: massNormalise(x, n, C, share), iterations: it };
}

function columnDots(a: Float64Array, b: Float64Array, C: number): Float64Array {
  const out = new Float64Array(C);
  for (let i = 0; i < a.length; i++) out[i % C] += a[i] * b[i];
  return out;
}

/** Scales each class column so its total over the nodes matches that class's labelled share. */
function massNormalise(f: Float64Array, n: number, C: number, share: Float64Array): Float64Array {
  const mass = new Float64Array(C);
  for (let i = 0; i < n * C; i++) mass[i % C] += f[i];
  for (let i = 0; i < n * C; i++) {
    const c = i % C;
    f[i] = mass[c] > 0 ? f[i] * share[c] / mass[c] : 0;
  }
  return f;
}

/** Argmax class of each node's row of scores. */
export function argmaxRows(scores: Float64Array, n: number, C = NUM_CLASSES): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (scores[i * C + c] > scores[i * C + best]) best = c;
    out[i] = best;
  }
  return out;
}

/**
 * Classes of out-of-graph points (test images) from their k nearest graph nodes: the
 * affinity-weighted sum of those nodes' spread scores, with the graph's Gaussian width.
 */
export function inductiveClasses(
  nb: Neighbours,
  scores: Float64Array,
  sigma2: number,
  C = NUM_CLASSES,
): Int32Array {
  const out = new Int32Array(nb.count);
  const acc = new Float64Array(C);
  for (let i = 0; i < nb.count; i++) {
    acc.fill(0);
    // Relative to the nearest node, so a point far from every node does not underflow to 0.
    const near = nb.dist2[i * nb.k];
    for (let r = 0; r < nb.k; r++) {
      const j = nb.index[i * nb.k + r], w = Math.exp(-(nb.dist2[i * nb.k + r] - near) / sigma2);
      for (let c = 0; c < C; c++) acc[c] += w * scores[j * C + c];
    }
    let best = 0;
    for (let c = 1; c < C; c++) if (acc[c] > acc[best]) best = c;
    out[i] = best;
  }
  return out;
}
