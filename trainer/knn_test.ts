import assert from "node:assert/strict";
import { test } from "node:test";
import { mulberry32 } from "../common/random.ts";
import { chooseK, fitStandardiser, knnSearch, standardise, voteNeighbours } from "./knn.ts";

function randomRows(n: number, dim: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return new Float32Array(n * dim).map(() => r() * 2 - 1);
}

test("knnSearch() matches a naive sort of all distances, skipping self in a self-query", () => {
  const dim = 3, nb = 1500, nq = 7, k = 5; // nb spans two chunks, nq a short last block
  const base = randomRows(nb, dim, 1), query = randomRows(nq, dim, 2);
  const got = knnSearch(query, nq, base, nb, dim, k);
  const self = knnSearch(base, 9, base, nb, dim, k, true);
  const naive = (q: Float32Array, qi: number, skip: number) =>
    Array.from({ length: nb }, (_, j) => {
      let d = 0;
      for (let t = 0; t < dim; t++) d += (q[qi * dim + t] - base[j * dim + t]) ** 2;
      return { j, d };
    }).filter((e) => e.j !== skip).sort((a, b) => a.d - b.d).slice(0, k);
  for (let i = 0; i < nq; i++) {
    const want = naive(query, i, -1);
    assert.deepEqual(Array.from(got.index.subarray(i * k, (i + 1) * k)), want.map((e) => e.j));
    want.forEach((e, r) => assert.ok(Math.abs(got.dist2[i * k + r] - e.d) < 1e-5));
  }
  for (let i = 0; i < 9; i++) {
    assert.deepEqual(
      Array.from(self.index.subarray(i * k, (i + 1) * k)),
      naive(base, i, i).map((e) => e.j),
    );
  }
  assert.throws(() => knnSearch(base, 1, base, 3, dim, 3, true), /cannot find 3 neighbours/);
});

test("fitStandardiser() drops inactive units and scales the rest to unit variance", () => {
  const n = 1000, dim = 3, r = mulberry32(3);
  const x = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) {
    x[i * dim] = 5 + 3 * (r() - 0.5); // active, variance 0.75
    x[i * dim + 1] = 0.01 * (r() - 0.5); // collapsed unit
    x[i * dim + 2] = -2 + (r() - 0.5); // active, variance 1/12
  }
  const s = fitStandardiser(x, n, dim);
  assert.deepEqual(Array.from(s.keep), [0, 2]);
  const z = standardise(x, n, dim, s);
  for (const d of [0, 1]) {
    let m = 0, v = 0;
    for (let i = 0; i < n; i++) m += z[i * 2 + d] / n;
    for (let i = 0; i < n; i++) v += (z[i * 2 + d] - m) ** 2 / n;
    assert.ok(Math.abs(m) < 1e-4 && Math.abs(v - 1) < 1e-3, `dim ${d}: mean ${m}, var ${v}`);
  }
});

test("voteNeighbours() takes the majority, ties to the nearest; chooseK() picks by leave-one-out", () => {
  const nb = {
    k: 3,
    count: 2,
    index: Int32Array.from([0, 1, 2, 2, 1, 0]),
    dist2: new Float32Array(6),
  };
  assert.deepEqual(Array.from(voteNeighbours(nb, [1, 0, 0])), [0, 0]);
  assert.deepEqual(Array.from(voteNeighbours(nb, [1, 0, 0], 2)), [1, 0]);
  // Two classes on a line, one mislabelled point inside class 0: k = 1 copies the mistake.
  const xs = [0, 1, 2, 3, 4, 10, 11, 12, 13, 14];
  const labels = [0, 0, 1, 0, 0, 1, 1, 1, 1, 1];
  const best = chooseK(Float32Array.from(xs), labels, xs.length, 1, [1, 3]);
  assert.equal(best.k, 3);
  assert.equal(best.looAccuracy, 0.9);
});
