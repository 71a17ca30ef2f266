import { deepEqual as assertEquals } from "node:assert/strict";
import { nearest } from "./knn.ts";

function bruteForce(data: Float32Array, dim: number, q: number[], k: number, skip = -1): number[] {
  const rows = Array.from({ length: data.length / dim }, (_, r) => r).filter((r) => r !== skip);
  const dist = (r: number) => q.reduce((s, x, j) => s + (data[r * dim + j] - x) ** 2, 0);
  return rows.sort((a, b) => dist(a) - dist(b) || a - b).slice(0, k);
}

Deno.test("nearest() returns the same k rows as sorting every distance", () => {
  let s = 7;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
  const dim = 5, n = 400;
  const data = Float32Array.from({ length: n * dim }, rand);
  for (let t = 0; t < 20; t++) {
    const q = Array.from({ length: dim }, rand);
    const got = nearest(data, dim, n, q, 10);
    assertEquals(Array.from(got.index), bruteForce(data, dim, q, 10));
    for (let i = 1; i < 10; i++) assertEquals(got.distance[i] >= got.distance[i - 1], true);
  }
});

Deno.test("nearest() skips rows and returns fewer than k when fewer rows remain", () => {
  const data = Float32Array.from([0, 0, 1, 0, 3, 0]);
  const got = nearest(data, 2, 3, [0, 0], 10, (r) => r === 0);
  assertEquals(Array.from(got.index), [1, 2]);
  assertEquals(Array.from(got.distance), [1, 3]);
});
