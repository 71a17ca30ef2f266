import assert from "node:assert/strict";
import { mulberry32, normalSource, sampleLatent } from "./sampling.ts";

Deno.test("mulberry32() repeats for a seed and differs across seeds", () => {
  const a = mulberry32(42), b = mulberry32(42), c = mulberry32(43);
  const xs = [a(), a(), a()];
  assert.deepEqual(xs, [b(), b(), b()]);
  assert.notDeepEqual(xs, [c(), c(), c()]);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});

Deno.test("normalSource() has mean ~0 and variance ~1 over 20k draws (tolerance 0.05)", () => {
  const n = normalSource(7);
  let s = 0, s2 = 0;
  const N = 20000;
  for (let i = 0; i < N; i++) {
    const x = n();
    s += x;
    s2 += x * x;
  }
  assert.ok(Math.abs(s / N) < 0.05, `mean ${s / N}`);
  assert.ok(Math.abs(s2 / N - 1) < 0.05, `variance ${s2 / N}`);
});

Deno.test("sampleLatent() scales noise by exp(logvar/2) around mu", () => {
  const zs = sampleLatent([1, -1], [Math.log(4), -100], 3, () => 1);
  assert.equal(zs.length, 3);
  for (const z of zs) {
    assert.ok(Math.abs(z[0] - 3) < 1e-12); // 1 + 2 * 1
    assert.ok(Math.abs(z[1] + 1) < 1e-12); // variance ~0
  }
});
