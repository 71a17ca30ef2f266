/**
 * Beyond the study: few-label heads on the same frozen latents and labelled subsets as the
 * study's heads. "knn" votes among the nearest labelled latents (k by leave-one-out on those
 * labels); "spread" spreads the labels over a kNN graph of the labelled and unlabelled training
 * latents and classifies each test image from its nearest training nodes (../semi_supervised.ts).
 * Both read standardised active units (../knn.ts), fitted on the unlabelled graph nodes. Test
 * images are only ever queries: neither the graph, the standardiser nor any setting sees them.
 * A latent's neighbour lists are cached next to its VAE, so a later job on it reuses them.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { accuracy } from "../classifiers.ts";
import { type Split, stratifiedIndices } from "../data.ts";
import { labelledIndices } from "./select.ts";
import {
  ACTIVE_VARIANCE,
  chooseK,
  fitStandardiser,
  knnSearch,
  type Neighbours,
  standardise,
  voteNeighbours,
} from "../knn.ts";
import {
  affinityGraph,
  argmaxRows,
  type Graph,
  inductiveClasses,
  SPREAD_CONFIG,
  spreadLabels,
} from "../semi_supervised.ts";
import { type ExperimentConfig, shortHash } from "./config.ts";
import type { Calibration } from "./calibrate.ts";
import type { Sizes } from "./plan.ts";
import type { CellSpec, Classifier } from "./results.ts";

export const FEW_LABEL_HEADS: Classifier[] = ["knn", "spread"];

export function isFewLabel(c: Classifier): boolean {
  return FEW_LABEL_HEADS.includes(c);
}

/** Training rows of the graph: all of train, or a seeded stratified subset (labelled rows join it). */
export function graphBase(cfg: ExperimentConfig, train: Split): Int32Array {
  const n = cfg.fewLabel.graphCount;
  return n > 0 && n < train.count
    ? stratifiedIndices(train.labels, n, cfg.dataSeed - 2)
    : Int32Array.from({ length: train.count }, (_, i) => i);
}

export interface FewLabelContext {
  cfg: ExperimentConfig;
  train: Split;
  test: Split;
  latent: number;
  /** mu of every training image and of the scored test images, [n * latent]. */
  muAll: Float32Array;
  muTest: Float32Array;
  /** Stem of the neighbour-list cache files (the VAE's checkpoint path), or null for none. */
  cacheStem: string | null;
  log: (line: string) => void;
  /** A finished cell; `t0` is when it started (performance.now()). */
  emit: (c: CellSpec, r: FewLabelResult, t0: number) => void;
}

export interface FewLabelResult {
  trainAcc: number;
  testAcc: number;
  /** kNN: the chosen k; spread: conjugate-gradient iterations. */
  steps: number;
  note: string;
}

interface GraphData {
  /** Training row of each node. */
  rows: Int32Array;
  graph: Graph;
  testNb: Neighbours;
}

/** Runs the knn and spread cells of one latent; the base graph is built (or loaded) once. */
export function runFewLabelCells(x: FewLabelContext, cells: CellSpec[]): void {
  if (cells.length === 0) return;
  const { cfg, train, latent: L } = x;
  const baseRows = graphBase(cfg, train);
  const std = fitStandardiser(gatherRows(x.muAll, L, baseRows), baseRows.length, L);
  const zAll = standardise(x.muAll, train.count, L, std);
  const zTest = standardise(x.muTest, x.test.count, L, std);
  const w = std.keep.length;
  x.log(`few-label heads: ${w} of ${L} latent units active, graph of ${baseRows.length}+ nodes`);
  let base: GraphData | null = null;
  for (const c of cells) {
    const t0 = performance.now();
    const idx = labelledIndices(cfg, train.labels, c.samples, cfg.dataSeed + c.seed);
    const y = Uint16Array.from(idx, (i) => train.labels[i]);
    const zLab = gatherRows(zAll, w, idx);
    let r: FewLabelResult;
    if (c.classifier === "knn") {
      const { k, looAccuracy } = chooseK(zLab, y, idx.length, w);
      const trainPred = voteNeighbours(knnSearch(zLab, idx.length, zLab, idx.length, w, k), y);
      const testPred = voteNeighbours(knnSearch(zTest, x.test.count, zLab, idx.length, w, k), y);
      r = {
        trainAcc: accuracy(trainPred, y),
        testAcc: accuracy(testPred, x.test.labels),
        steps: k,
        note: `k = ${k} (leave-one-out ${(looAccuracy * 100).toFixed(1)}%)`,
      };
    } else {
      const inBase = baseRows.length === train.count || idx.every((i) => hasRow(baseRows, i));
      const g = inBase
        ? (base ??= buildGraph(x, zAll, zTest, w, baseRows, true))
        : buildGraph(x, zAll, zTest, w, union(baseRows, idx), false);
      r = spreadCell(x, g, idx, y);
    }
    x.emit(c, r, t0);
    x.log(`${c.key}: ${r.note}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

function spreadCell(x: FewLabelContext, g: GraphData, idx: Int32Array, y: Uint16Array) {
  const pos = new Map<number, number>();
  g.rows.forEach((row, p) => pos.set(row, p));
  const nodes = Int32Array.from(idx, (i) => pos.get(i)!);
  const { scores, iterations } = spreadLabels(g.graph, nodes, y, SPREAD_CONFIG);
  const all = argmaxRows(scores, g.graph.n);
  const trainPred = Int32Array.from(nodes, (p) => all[p]);
  const testPred = inductiveClasses(g.testNb, scores, g.graph.sigma2);
  return {
    trainAcc: accuracy(trainPred, y),
    testAcc: accuracy(testPred, x.test.labels),
    steps: iterations,
    note: `graph of ${g.graph.n.toLocaleString("en")} nodes, k = ${SPREAD_CONFIG.k}, ` +
      `alpha = ${SPREAD_CONFIG.alpha}, ${iterations} CG iterations`,
  };
}

function buildGraph(
  x: FewLabelContext,
  zAll: Float32Array,
  zTest: Float32Array,
  w: number,
  rows: Int32Array,
  cacheable: boolean,
): GraphData {
  const k = SPREAD_CONFIG.k;
  const key = shortHash({
    rows: rows.length,
    w,
    k,
    test: x.test.count,
    few: x.cfg.fewLabel,
    seed: x.cfg.dataSeed,
    active: ACTIVE_VARIANCE,
  });
  const path = cacheable && x.cacheStem ? `${x.cacheStem}.knn-${key}.bin` : null;
  const t0 = performance.now();
  const cached = path ? readNeighbours(path, rows.length + x.test.count, k) : null;
  const z = gatherRows(zAll, w, rows);
  const all = cached ??
    concat(
      knnSearch(z, rows.length, z, rows.length, w, k, true),
      knnSearch(zTest, x.test.count, z, rows.length, w, k),
    );
  if (path && !cached) writeNeighbours(path, all);
  const nodesNb = slice(all, 0, rows.length), testNb = slice(all, rows.length, x.test.count);
  x.log(
    `kNN graph of ${rows.length} nodes + ${x.test.count} test queries ${
      cached ? "loaded" : "built"
    } in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  return { rows, graph: affinityGraph(nodesNb), testNb };
}

function gatherRows(m: Float32Array, width: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * width);
  for (let i = 0; i < idx.length; i++) {
    out.set(m.subarray(idx[i] * width, (idx[i] + 1) * width), i * width);
  }
  return out;
}

/** Whether a sorted row list holds row i. */
function hasRow(sorted: Int32Array, i: number): boolean {
  let lo = 0, hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] === i) return true;
    if (sorted[mid] < i) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

function union(a: Int32Array, b: Int32Array): Int32Array {
  return Int32Array.from(new Set([...a, ...b])).sort();
}

function concat(a: Neighbours, b: Neighbours): Neighbours {
  const index = new Int32Array(a.index.length + b.index.length);
  const dist2 = new Float32Array(index.length);
  index.set(a.index), index.set(b.index, a.index.length);
  dist2.set(a.dist2), dist2.set(b.dist2, a.dist2.length);
  return { k: a.k, count: a.count + b.count, index, dist2 };
}

function slice(a: Neighbours, from: number, count: number): Neighbours {
  const k = a.k;
  return {
    k,
    count,
    index: a.index.subarray(from * k, (from + count) * k),
    dist2: a.dist2.subarray(from * k, (from + count) * k),
  };
}

/** Neighbour lists as raw bytes: count, k, then the indices and the squared distances. */
function writeNeighbours(path: string, nb: Neighbours): void {
  const head = Int32Array.from([nb.count, nb.k]);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(
    tmp,
    Buffer.concat(
      [head, nb.index, nb.dist2].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)),
    ),
  );
  renameSync(tmp, path);
}

/** A cached neighbour list, or null when absent or of another shape (then it is rebuilt). */
function readNeighbours(path: string, count: number, k: number): Neighbours | null {
  if (!existsSync(path)) return null;
  const buf = readFileSync(path);
  const bytes = new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  if (bytes.byteLength !== 8 + count * k * 8) return null;
  const head = new Int32Array(bytes.buffer, 0, 2);
  if (head[0] !== count || head[1] !== k) return null;
  return {
    k,
    count,
    index: new Int32Array(bytes.buffer, 8, count * k),
    dist2: new Float32Array(bytes.buffer, 8 + count * k * 4, count * k),
  };
}

/** Estimated seconds of a job's few-label cells at the measured kNN speed. */
export function fewLabelSeconds(
  cfg: ExperimentConfig,
  cells: CellSpec[],
  cal: Calibration,
  z: Sizes,
): number {
  const few = cells.filter((c) => isFewLabel(c.classifier));
  if (few.length === 0) return 0;
  const L = few[0].latent ?? 1;
  const n = cfg.fewLabel.graphCount > 0
    ? Math.min(cfg.fewLabel.graphCount, z.trainCount)
    : z.trainCount;
  const graph = (n * n + z.testCount * n) * L;
  const perCell = few.reduce(
    (a, c) =>
      a +
      (c.classifier === "knn"
        ? (c.samples * c.samples * 2 + z.testCount * c.samples) * L
        : SPREAD_CONFIG.maxIterations / 2 * n * 2 * SPREAD_CONFIG.k * 10),
    0,
  );
  return (graph + perCell) * (cal.knnPairDim ?? 0);
}
