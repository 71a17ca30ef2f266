import assert from "node:assert/strict";
import { mulberry32 } from "./random.ts";

Deno.test("mulberry32() gives fixed first outputs for a seed (k / 2^32, k a uint32)", () => {
  const draw = (seed: number, n: number) => {
    const r = mulberry32(seed);
    return Array.from({ length: n }, () => r() * 2 ** 32);
  };
  // Changing these changes every shuffle, split and latent sample made from a seed.
  assert.deepEqual(draw(42, 3), [2581720956, 1925393290, 3661312704]);
  assert.deepEqual(draw(0, 2), [0.26642920868471265 * 2 ** 32, 0.0003297457005828619 * 2 ** 32]);
  // The seed is taken as a uint32: -1 and 2^32 - 1 are the same seed, as are 5 and 2^32 + 5.
  assert.deepEqual(draw(-1, 4), draw(2 ** 32 - 1, 4));
  assert.deepEqual(draw(2 ** 32 + 5, 4), draw(5, 4));
  assert.ok(draw(7, 1000).every((k) => Number.isInteger(k) && k >= 0 && k < 2 ** 32));
});
