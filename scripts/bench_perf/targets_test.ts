import assert from "node:assert/strict";
import { checkTargets, type TargetRows, TARGETS } from "./targets.ts";
import { row } from "./_row_fixture.ts";
import type { WrkResult } from "../_wrk.ts";

const native = (svc: Partial<WrkResult>, c1: number): TargetRows => ({
  label: "native",
  replicas: 1,
  conns: 32,
  service: row("service", "native", 32, svc),
  baseline: row("baseline", "native", 32, { rps: 5000 }),
  service1: row("service", "native", 1, { p50: c1 }),
  baseline1: row("baseline", "native", 1, { p50: 0.3 }),
  ceiling: 25000,
});

Deno.test("the native targets: each bound checked and stated in its line", () => {
  const results = checkTargets(native({ rps: 21000, p99: 6 }, 0.32), TARGETS.native);
  assert.deepEqual(results, [
    { ok: true, text: "native raw c32: 21000 req/s >= 20000" },
    { ok: true, text: "native raw c32: >= 4x baseline (4.20x)" },
    { ok: false, text: "native raw c32: p99 6.00 ms <= 5 ms" },
    {
      ok: true,
      text:
        "native raw c1: service p50 1.07x the baseline's (median round: 0.320 vs 0.300 ms; within 10% counts as no worse)",
    },
  ]);
});

Deno.test("the wasm targets compare with the ceiling; ratios from the rounds win over one row's", () => {
  const t: TargetRows = {
    label: "wasm",
    replicas: 1,
    conns: 32,
    service: { ...row("service", "wasm", 32, { rps: 1300, p99: 14 }), perBaseline: 1.25 },
    baseline: row("baseline", "wasm", 32, { rps: 1000 }),
    ceiling: 1600,
  };
  assert.deepEqual(checkTargets(t, TARGETS.wasm), [
    { ok: true, text: "wasm raw c32: 1300 req/s >= 80% of ceiling 1600 (81%)" },
    { ok: false, text: "wasm raw c32: >= 1.3x baseline (1.25x)" },
    { ok: true, text: "wasm raw c32: p99 14.00 ms <= 15 ms" },
  ], "no c1 line without the concurrency-1 rows");
});

Deno.test("a target is data: a changed bound changes the verdict and the line", () => {
  const [r] = checkTargets(native({}, 0.315), [{ metric: "c1P50PerBaseline", atMost: 1.05 }]);
  assert.equal(r.ok, true);
  assert.match(r.text, /1\.05x the baseline's .* within 5% counts as no worse/);
  assert.throws(() => checkTargets(native({}, 1), [{ metric: "rps" }]), /rps has no bound/);
});

Deno.test("native replica rows are also checked against 80% of the ceiling, single ones are not", () => {
  const t = native({ rps: 18000, p99: 4 }, 0.3);
  const replicated: TargetRows = {
    ...t,
    label: "native-int8 x2",
    replicas: 2,
    service: { ...t.service, backend: "native-int8 x2" },
  };
  const [first, second] = checkTargets(replicated, TARGETS.native);
  assert.deepEqual(first, {
    ok: false,
    text: "native-int8 x2 raw c32: 18000 req/s >= 80% of ceiling 25000 (72%)",
  });
  assert.equal(second.text, "native-int8 x2 raw c32: 18000 req/s >= 20000");
  const single = checkTargets(t, TARGETS.native);
  assert.equal(single.length, 4);
  assert.ok(single.every((r) => !r.text.includes("ceiling")), "no ceiling bound on one replica");
});
