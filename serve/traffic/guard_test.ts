import assert from "node:assert/strict";
import { CanaryGuard } from "./guard.ts";

const bounds = { maxErrorRate: 0.05, maxP99Ms: 100, minRequests: 50 };

Deno.test("CanaryGuard says nothing before minRequests, then trips on the error rate", () => {
  const g = new CanaryGuard(bounds);
  for (let i = 0; i < 49; i++) assert.equal(g.observe(1, true), null);
  const why = g.observe(1, true);
  assert.match(why!, /error rate 100\.0% over the last 50 canary requests .* 5\.0%/);
  assert.equal(g.tripped, why);
  assert.equal(g.observe(1, false), null, "trips once");
});

Deno.test("CanaryGuard stays within bounds at 4% errors and fast answers", () => {
  const g = new CanaryGuard(bounds);
  for (let i = 0; i < 1000; i++) {
    assert.equal(g.observe(5, (i + 1) % 25 === 0), null, `request ${i}`);
  }
  assert.equal(g.summary().errors, 40);
  assert.equal(g.p99(), 5);
});

Deno.test("CanaryGuard trips on the p99 latency", () => {
  const g = new CanaryGuard(bounds);
  let why: string | null = null;
  for (let i = 0; i < 200 && !why; i++) why = g.observe(i % 50 === 0 ? 500 : 2, false);
  assert.match(why!, /p99 latency 500\.0 ms .* bound of 100 ms/);
});

Deno.test("CanaryGuard forgets errors that left the window", () => {
  const g = new CanaryGuard({ ...bounds, window: 100 });
  for (let i = 0; i < 4; i++) g.observe(1, true);
  for (let i = 0; i < 100; i++) g.observe(1, false);
  assert.equal(g.summary().errors, 0);
});
