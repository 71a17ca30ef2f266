import assert from "node:assert/strict";
import { test } from "node:test";
import { mulberry32 } from "../common/random.ts";
import { knnSearch, voteNeighbours } from "./knn.ts";
import {
  affinityGraph,
  argmaxRows,
  inductiveClasses,
  SPREAD_CONFIG,
  spreadLabels,
} from "./semi_supervised.ts";

/**
 * Two long parallel bands of points (class = band), one label per band at opposite ends: a
 * point's nearest label is often the other band's, but its chain of neighbours runs along its
 * own band, which is what spreading follows.
 */
function bands(perBand: number, seed: number) {
  const r = mulberry32(seed);
  const x = new Float32Array(2 * perBand * 2), y = new Int32Array(2 * perBand);
  for (let i = 0; i < 2 * perBand; i++) {
    const band = i % 2;
    x[i * 2] = 10 * r();
    x[i * 2 + 1] = band * 1.5 + 0.2 * (r() - 0.5);
    y[i] = band;
  }
  return { x, y, n: 2 * perBand };
}

function acc(pred: Int32Array, y: Int32Array): number {
  return pred.reduce((a, p, i) => a + (p === y[i] ? 1 : 0), 0) / y.length;
}

test("label spreading follows the data's manifold where kNN on the labels alone cannot", () => {
  const train = bands(300, 1), test_ = bands(200, 2);
  // The leftmost point of band 0 and the rightmost of band 1 carry the only labels.
  let left = -1, right = -1;
  for (let i = 0; i < train.n; i++) {
    if (train.y[i] === 0 && (left < 0 || train.x[i * 2] < train.x[left * 2])) left = i;
    if (train.y[i] === 1 && (right < 0 || train.x[i * 2] > train.x[right * 2])) right = i;
  }
  const nodes = [left, right], labels = [0, 1];
  const labelledX = Float32Array.from([
    ...train.x.subarray(left * 2, left * 2 + 2),
    ...train.x.subarray(right * 2, right * 2 + 2),
  ]);
  const knn = voteNeighbours(knnSearch(test_.x, test_.n, labelledX, 2, 2, 1), labels, 1, 2);
  const g = affinityGraph(knnSearch(train.x, train.n, train.x, train.n, 2, SPREAD_CONFIG.k, true));
  const spread = spreadLabels(g, nodes, labels, SPREAD_CONFIG, 2);
  assert.ok(spread.iterations < SPREAD_CONFIG.maxIterations, "CG must converge");
  const trainPred = argmaxRows(spread.scores, train.n, 2);
  const testPred = inductiveClasses(
    knnSearch(test_.x, test_.n, train.x, train.n, 2, SPREAD_CONFIG.k),
    spread.scores,
    g.sigma2,
    2,
  );
  const a = {
    knn: acc(knn, test_.y),
    train: acc(trainPred, train.y),
    test: acc(testPred, test_.y),
  };
  // Nearest-label splits the plane at x = 5: about half of each band goes to the wrong class.
  assert.ok(a.knn > 0.4 && a.knn < 0.6, `kNN on 2 labels: ${a.knn}`);
  assert.ok(a.train > 0.99 && a.test > 0.99, `spreading: ${JSON.stringify(a)}`);
  // Deterministic: the same inputs give the same scores.
  assert.deepEqual(spreadLabels(g, nodes, labels, SPREAD_CONFIG, 2).scores, spread.scores);
});

test("affinityGraph() is symmetric, has no self-loops, and merges mutual neighbours", () => {
  const d = bands(50, 3);
  const nb = knnSearch(d.x, d.n, d.x, d.n, 2, 4, true);
  const g = affinityGraph(nb);
  const w = new Map<string, number>();
  for (let i = 0; i < g.n; i++) {
    for (let e = g.rowStart[i]; e < g.rowStart[i + 1]; e++) {
      assert.notEqual(g.col[e], i);
      assert.ok(!w.has(`${i},${g.col[e]}`), "duplicate edge");
      w.set(`${i},${g.col[e]}`, g.weight[e]);
    }
  }
  for (const [key, v] of w) {
    const [i, j] = key.split(",");
    assert.equal(w.get(`${j},${i}`), v);
  }
  // Every node keeps at least its own k neighbours.
  for (let i = 0; i < g.n; i++) assert.ok(g.rowStart[i + 1] - g.rowStart[i] >= 4);
});
