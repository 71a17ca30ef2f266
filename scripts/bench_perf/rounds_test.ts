import assert from "node:assert/strict";
import {
  backendOf,
  findRow,
  median,
  medianOfRounds,
  replicasOf,
  type Round,
  type Row,
  runtimeOf,
  runtimesOf,
} from "./rounds.ts";

function row(what: string, backend: string, rps: number, p50: number): Row {
  const cpu = { main: 0, other: 0, wrk: 0 };
  return {
    what,
    backend,
    body: "raw",
    conns: 32,
    r: { rps, p50, p99: 0, p999: 0, errors: "", load: `${rps}`, cpu },
  };
}

const round = (svc: number, base: number, ceil: number): Round => ({
  ceilings: new Map([["native", { n1: ceil / 4, n256: ceil }]]),
  rows: [row("service", "native x2", svc, 1000 / svc), row("baseline", "native", base, 1)],
});

Deno.test("median() of odd and even counts; runtimeOf() drops the replica count", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(runtimeOf("native x2"), "native");
  assert.equal(runtimeOf("wasm"), "wasm");
});

Deno.test("medianOfRounds(): the median round's figures, range, and ratios taken within rounds", () => {
  // Round 2 is slow for everything: its ratios are like the others', its req/s is not.
  const { rows, ceilings } = medianOfRounds([
    round(2000, 1000, 8000),
    round(600, 300, 2000),
    round(3000, 1000, 10000),
  ]);
  assert.deepEqual(ceilings.get("native"), { n1: 2000, n256: 8000 });
  const [svc, base] = rows;
  assert.equal(svc.r.rps, 2000);
  assert.deepEqual(svc.range, [600, 3000]);
  assert.equal(svc.r.load, "2000", "latencies, CPU and load come from the median-req/s round");
  assert.equal(svc.perBaseline, 2, "median of 2, 2 and 3");
  assert.equal(svc.perCeiling, 0.3, "median of 0.25, 0.3 and 0.3");
  assert.equal(svc.p50PerBaseline, 0.5, "median of 0.5, 1.67 and 0.33");
  assert.equal(base.perBaseline, undefined);
  assert.equal(findRow(rows, "baseline", "native x2", "raw", 32), base);
  assert.equal(findRow(rows, "service", "native x2", "raw", 32), svc);
  assert.equal(findRow(rows, "service", "native", "raw", 32), undefined);
});

Deno.test("runtimesOf(): every backend with every precision, labelled <backend>[-int8]", () => {
  assert.deepEqual(runtimesOf(["native", "wasm"], ["fp32", "int8"]), [
    { backend: "native", precision: "fp32", label: "native" },
    { backend: "native", precision: "int8", label: "native-int8" },
    { backend: "wasm", precision: "fp32", label: "wasm" },
    { backend: "wasm", precision: "int8", label: "wasm-int8" },
  ]);
  assert.deepEqual(runtimesOf(["wasm"], ["int8"]).map((r) => r.label), ["wasm-int8"]);
});

Deno.test("a row label names its runtime, backend and replica count", () => {
  assert.equal(runtimeOf("wasm-int8 x2"), "wasm-int8");
  assert.equal(backendOf("wasm-int8 x2"), "wasm");
  assert.equal(backendOf("native"), "native");
  assert.equal(replicasOf("native-int8 x3"), 3);
  assert.equal(replicasOf("native-int8"), 1);
});

Deno.test("medianOfRounds(): ceilings per runtime label, CPU-second figures only when every round has them", () => {
  const c = (n256: number, cpu256?: number) => ({ n1: n256 / 4, n256, cpu256 });
  const rounds: Round[] = [
    [c(100, 300), c(250, 700)],
    [c(120, 330), c(200, 650)],
    [c(80, 310), c(260)],
  ].map(([fp32, int8]) => ({
    ceilings: new Map([["native", fp32], ["native-int8", int8]]),
    rows: [],
  }));
  const { ceilings, rows } = medianOfRounds(rounds);
  assert.deepEqual(rows, []);
  assert.deepEqual(ceilings.get("native"), { n1: 25, n256: 100, cpu256: 310 });
  assert.deepEqual(ceilings.get("native-int8"), { n1: 62.5, n256: 250 }, "round 3 lacks cpu256");
});
