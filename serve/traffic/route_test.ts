import assert from "node:assert/strict";
import { bucketOf, toCanary } from "./route.ts";

Deno.test("bucketOf() is stable and in [0, 100)", () => {
  for (const k of ["a", "user-1", "user-2", "", "ключ"]) {
    const b = bucketOf(k);
    assert.ok(b >= 0 && b < 100, `${k}: ${b}`);
    assert.equal(bucketOf(k), b);
  }
  // Pinned: a change of hash would re-route every client of a running canary.
  assert.equal(bucketOf("user-1"), 59.16);
  assert.equal(bucketOf("user-2"), 11.05);
});

Deno.test("toCanary() at 20% takes 20 +- 1% of 10,000 distinct keys", () => {
  let n = 0;
  for (let i = 0; i < 10_000; i++) if (toCanary(`client-${i}`, 20)) n++;
  assert.ok(Math.abs(n / 100 - 20) <= 1, `${n / 100}%`);
});

Deno.test("raising the percent only moves keys to the canary", () => {
  for (let i = 0; i < 2000; i++) {
    const k = `k${i}`;
    if (toCanary(k, 10)) assert.ok(toCanary(k, 30), k);
  }
});

Deno.test("requests without a key are spread at random", () => {
  let n = 0;
  for (let i = 0; i < 10_000; i++) if (toCanary(null, 50)) n++;
  assert.ok(n > 4500 && n < 5500, String(n));
});
