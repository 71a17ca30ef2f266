import assert from "node:assert/strict";
import { ceilingLine, int8Lines, targetLines } from "./report.ts";
import type { Ceiling } from "./rounds.ts";
import { row } from "./_row_fixture.ts";

const ceilings = new Map<string, Ceiling>([
  ["native", { n1: 500, n256: 3000, cpu1: 400, cpu256: 2000 }],
  ["native-int8", { n1: 800, n256: 7500, cpu1: 700, cpu256: 5000 }],
  ["wasm", { n1: 100, n256: 600 }],
  ["wasm-int8", { n1: 120, n256: 900 }],
]);

Deno.test("ceilingLine() states images/s, ms/image and images per CPU-second when measured", () => {
  assert.equal(
    ceilingLine("native-int8", ceilings.get("native-int8")!, 2),
    "ceiling native-int8: N=256 7500 images/s (0.1333 ms/image), N=1 800 images/s (1.2500 ms/image), 2 thread(s); N=256 5000 images per CPU-second",
  );
  assert.doesNotMatch(ceilingLine("wasm", ceilings.get("wasm")!, 1), /CPU-second/);
});

Deno.test("int8Lines(): each int8 runtime against its fp32 one, ceilings and services at each replica count", () => {
  const rows = [
    row("service", "native", 32, { rps: 6000 }),
    row("service", "native-int8", 32, { rps: 6600 }),
    row("service", "native-int8", 1, { rps: 900 }),
    row("service", "native x2", 32, { rps: 8000 }),
    row("service", "native-int8 x2", 32, { rps: 12000 }),
    row("service", "wasm-int8", 32, { rps: 700 }),
  ];
  assert.deepEqual(int8Lines(rows, ceilings, 32), [
    "int8 vs fp32 (same run; target: ceiling N=256 >= 2x):",
    "  ok   ceiling native-int8 N=256 7500 img/s = 2.50x fp32 (3000); N=1 1.60x; per CPU-second N=256 2.50x",
    "       service native-int8 raw c32: 6600 vs 6000 req/s (1.10x)",
    "       service native-int8 x2 raw c32: 12000 vs 8000 req/s (1.50x)",
    "  MISS ceiling wasm-int8 N=256 900 img/s = 1.50x fp32 (600); N=1 1.20x",
  ]);
});

Deno.test("int8Lines() is empty without an int8 runtime or without its fp32 one", () => {
  const fp32Only = new Map([...ceilings].filter(([k]) => !k.endsWith("-int8")));
  assert.deepEqual(int8Lines([], fp32Only, 32), []);
  assert.deepEqual(int8Lines([], new Map([["wasm-int8", ceilings.get("wasm-int8")!]]), 32), []);
});

Deno.test("targetLines(): an int8 runtime gets its backend's targets, against its own ceiling", () => {
  const rows = [
    row("service", "wasm-int8", 32, { rps: 810, p99: 12 }),
    row("baseline", "wasm-int8", 32, { rps: 500 }),
  ];
  assert.deepEqual(targetLines(rows, ceilings, 32), [
    "  note wasm-int8: at 32 connections even 100% of the ceiling (900 img/s) means a mean latency of 35.56 ms (Little's law)",
    "  ok   wasm-int8 raw c32: 810 req/s >= 80% of ceiling 900 (90%)",
    "  ok   wasm-int8 raw c32: >= 1.3x baseline (1.62x)",
    "  ok   wasm-int8 raw c32: p99 12.00 ms <= 15 ms",
  ]);
});
