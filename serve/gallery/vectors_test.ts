import { deepEqual, equal, ok } from "node:assert/strict";
import { nearest } from "../../common/knn.ts";
import { PENDING, TRANSLATED, VectorIndex } from "./vectors.ts";

function lcg(seed: number) {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
}

/** Points around 10 centres, like class clusters in a latent space. */
function mixture(n: number, d: number, rand: () => number): Float32Array {
  const centres = Array.from({ length: 10 }, () => Array.from({ length: d }, () => 6 * rand()));
  const x = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) x[i * d + j] = centres[i % 10][j] + rand();
  }
  return x;
}

/** Brute force over the rows the index should consider searchable. */
function expected(ix: VectorIndex, q: ArrayLike<number>, k: number): number[] {
  return Array.from(
    nearest(ix.data, ix.dim, ix.rowCount, q, k, (r) => ix.state[r] > TRANSLATED).index,
  );
}

Deno.test("VectorIndex cluster search equals a linear scan, before and after changes", async () => {
  const rand = lcg(11), d = 8, n = 6000;
  const x = mixture(n, d, rand);
  const ix = new VectorIndex(d);
  for (let i = 0; i < n; i++) ix.set(`item-${i}`, x.subarray(i * d, (i + 1) * d));
  ok(ix.needsRebuild);
  await ix.rebuild();
  equal(ix.needsRebuild, false);
  const queries = mixture(40, d, rand);
  const check = () => {
    for (let t = 0; t < 40; t++) {
      const q = queries.subarray(t * d, (t + 1) * d);
      deepEqual(Array.from(ix.search(q, 10).rows), expected(ix, q, 10));
    }
  };
  check();
  // Moves, removals, pending rows and new rows keep the answers exact.
  for (let i = 0; i < 500; i++) {
    ix.update(
      i,
      Array.from({ length: d }, () => 8 * rand()),
      TRANSLATED,
    );
  }
  for (let i = 500; i < 700; i++) ix.remove(`item-${i}`);
  for (let i = 700; i < 800; i++) ix.update(i, null, PENDING);
  for (let i = 0; i < 300; i++) ix.set(`new-${i}`, Array.from({ length: d }, () => 6 * rand()));
  check();
  equal(ix.size, n - 200 + 300);
  deepEqual(ix.counts(), { fresh: n - 200 - 500 - 100 + 300, translated: 500, pending: 100 });
});

Deno.test("VectorIndex search skips pending and removed rows in a linear scan too", () => {
  const ix = new VectorIndex(2);
  ix.set("a", [0, 0]);
  ix.set("b", [1, 0]);
  ix.set("c", null);
  ix.set("d", [2, 0]);
  ix.remove("b");
  const r = ix.search([0, 0], 10);
  deepEqual(Array.from(r.rows).map((row) => ix.ids[row]), ["a", "d"]);
  deepEqual(Array.from(r.distances), [0, 2]);
});
