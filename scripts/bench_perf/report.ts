/**
 * bench_perf's printed report: the ceilings, the table of rows (req/s, latencies, ratios, CPU
 * profile, load), the batching summary of the service rows, int8 against fp32, and the targets
 * (scripts/bench_perf/targets.ts) marked ok / MISS. Each part is built as lines, so it can be
 * checked without a run.
 */
import { loadAvg } from "../_proc.ts";
import { markdownTable } from "../_table.ts";
import { backendOf, type Ceiling, findRow, replicasOf, type Row, runtimeOf } from "./rounds.ts";
import { checkTargets, INT8_CEILING_RATIO, TARGETS } from "./targets.ts";

const HEAD = [
  "server",
  "backend",
  "body",
  "conns",
  "req/s",
  "range",
  "p50 ms",
  "p99 ms",
  "p99.9 ms",
  "/ceiling",
  "/baseline",
  "cpu main",
  "cpu other",
  "cpu wrk",
  "load avg",
  "errors",
];

/** One runtime's ceiling: images/s (and ms/image) at N=256 and N=1, and per CPU-second. */
export function ceilingLine(label: string, c: Ceiling, threads: number): string {
  const cpu = c.cpu256 !== undefined ? `; N=256 ${c.cpu256.toFixed(0)} images per CPU-second` : "";
  return `ceiling ${label}: N=256 ${c.n256.toFixed(0)} images/s (${
    (1000 / c.n256).toFixed(4)
  } ms/image), N=1 ${c.n1.toFixed(0)} images/s (${
    (1000 / c.n1).toFixed(4)
  } ms/image), ${threads} thread(s)${cpu}`;
}

/**
 * Per int8 runtime whose fp32 runtime was measured too: the int8/fp32 ratios of the ceilings
 * (marked against INT8_CEILING_RATIO) and, for each replica count at which both services have
 * a raw row at `C` connections, of the service's req/s.
 */
export function int8Lines(rows: Row[], ceilings: Map<string, Ceiling>, C: number): string[] {
  const bound = INT8_CEILING_RATIO.atLeast;
  const out = [`int8 vs fp32 (same run; target: ceiling N=256 >= ${bound}x):`];
  for (const [label, c] of ceilings) {
    const fp32Label = label.replace(/-int8$/, "");
    const fp32 = ceilings.get(fp32Label);
    if (fp32Label === label || !fp32) continue;
    const r = c.n256 / fp32.n256;
    const cpu = c.cpu256 && fp32.cpu256
      ? `; per CPU-second N=256 ${(c.cpu256 / fp32.cpu256).toFixed(2)}x`
      : "";
    out.push(
      `  ${r >= bound ? "ok  " : "MISS"} ceiling ${label} N=256 ${c.n256.toFixed(0)} img/s = ${
        r.toFixed(2)
      }x fp32 (${fp32.n256.toFixed(0)}); N=1 ${(c.n1 / fp32.n1).toFixed(2)}x${cpu}`,
    );
    for (const s of rows.filter((r) => r.what === "service" && runtimeOf(r.backend) === label)) {
      // The fp32 service at the same replica count ("native-int8 x2" -> "native x2").
      const s0 = findRow(rows, "service", s.backend.replace(label, fp32Label), "raw", C);
      if (s.body !== "raw" || s.conns !== C || !s0) continue;
      out.push(
        `       service ${s.backend} raw c${C}: ${s.r.rps.toFixed(0)} vs ${
          s0.r.rps.toFixed(0)
        } req/s (${(s.r.rps / s0.r.rps).toFixed(2)}x)`,
      );
    }
  }
  return out.length > 1 ? out : [];
}

/** The table's cells for one row. */
function cells(rows: Row[], ceilings: Map<string, Ceiling>, x: Row): string[] {
  const ceil = ceilings.get(runtimeOf(x.backend))?.n256;
  const base = x.what === "service"
    ? findRow(rows, "baseline", x.backend, x.body, x.conns)
    : undefined;
  return [
    x.what,
    x.backend,
    x.body,
    String(x.conns),
    x.r.rps.toFixed(0),
    x.range ? `${x.range[0].toFixed(0)}-${x.range[1].toFixed(0)}` : "",
    x.r.p50.toFixed(2),
    x.r.p99.toFixed(2),
    x.r.p999.toFixed(2),
    x.perCeiling !== undefined
      ? x.perCeiling.toFixed(2)
      : ceil && x.what !== "hello"
      ? (x.r.rps / ceil).toFixed(2)
      : "",
    x.perBaseline !== undefined
      ? x.perBaseline.toFixed(2)
      : base
      ? (x.r.rps / base.r.rps).toFixed(2)
      : "",
    x.r.cpu.main.toFixed(2),
    x.r.cpu.other.toFixed(2),
    x.r.cpu.wrk.toFixed(2),
    x.r.load,
    x.r.errors,
  ];
}

/** The rows as a Markdown table. */
export function formatTable(rows: Row[], ceilings: Map<string, Ceiling>): string {
  return markdownTable(HEAD, rows.map((x) => cells(rows, ceilings, x)));
}

/** One line per service row that has a batching summary. */
export function batchingLines(rows: Row[]): string[] {
  const out: string[] = [];
  for (const x of rows) {
    if (!x.batching) continue;
    const b = x.batching;
    out.push(
      `  ${x.backend} ${x.body} c${x.conns}: ${b.runs} runs, mean batch ${
        b.meanBatch.toFixed(1)
      }, queue wait mean ${
        b.queueMeanMs.toFixed(2)
      } ms (p50 <= ${b.queueP50Ms} ms, p99 <= ${b.queueP99Ms} ms), run mean ${
        b.runMeanMs.toFixed(2)
      } ms (computing ${b.computeMeanMs.toFixed(2)} ms), ${
        x.backend.startsWith("native") ? "main thread" : "workers"
      } computing ${(b.busy * 100).toFixed(0)}% of the time`,
    );
  }
  return out;
}

/** Per service label: the Little's-law note, then each target marked ok / MISS. */
export function targetLines(rows: Row[], ceilings: Map<string, Ceiling>, C: number): string[] {
  const out: string[] = [];
  for (const b of new Set(rows.filter((r) => r.what === "service").map((r) => r.backend))) {
    const s = findRow(rows, "service", b, "raw", C), base = findRow(rows, "baseline", b, "raw", C);
    const ceil = ceilings.get(runtimeOf(b))?.n256;
    if (!s || !base || !ceil) continue;
    // Little's law for a closed loop of C connections: mean latency = C / throughput, and the
    // throughput cannot pass the compute ceiling, so C / ceiling is a floor on the mean latency
    // (and so on p99) that no server design beats with this model on this machine.
    const floorMs = (C / ceil) * 1000;
    out.push(
      `  note ${b}: at ${C} connections even 100% of the ceiling (${
        ceil.toFixed(0)
      } img/s) means a mean latency of ${floorMs.toFixed(2)} ms (Little's law)`,
    );
    const results = checkTargets({
      label: b,
      replicas: replicasOf(b),
      conns: C,
      service: s,
      baseline: base,
      service1: findRow(rows, "service", b, "raw", 1),
      baseline1: findRow(rows, "baseline", b, "raw", 1),
      ceiling: ceil,
    }, TARGETS[backendOf(b)] ?? TARGETS.native);
    for (const r of results) out.push(`  ${r.ok ? "ok  " : "MISS"} ${r.text}`);
  }
  return out;
}

/** Prints `lines` after an empty line, or nothing when there are none. */
function printSection(lines: string[]): void {
  if (lines.length) console.log(["", ...lines].join("\n"));
}

/** Prints the whole report of a run of `rounds` rounds at `C` connections. */
export function report(
  rows: Row[],
  ceilings: Map<string, Ceiling>,
  C: number,
  rounds: number,
): void {
  console.log("");
  console.log(formatTable(rows, ceilings));
  console.log(
    "cpu main/other: CPU-seconds per second used by the server's main (HTTP) thread and by its other threads (inference workers, onnxruntime, GC) during the row; cpu wrk: the load generator's.",
  );
  console.log(
    `${rounds} round(s): req/s is the median and range the lowest-highest over rounds; /ceiling and /baseline are medians of ratios taken within each round; latencies, CPU, load and batching come from the round with the median req/s.`,
  );
  console.log("\nBatching (service rows, from /metrics deltas):");
  for (const l of batchingLines(rows)) console.log(l);
  printSection(int8Lines(rows, ceilings, C));
  console.log("\nTargets (issue):");
  for (const l of targetLines(rows, ceilings, C)) console.log(l);
  console.log(`load average at end: ${loadAvg()}`);
}

/** Prints the report of a --ceilings-only run: each runtime's median ceiling, int8 vs fp32. */
export function reportCeilings(
  ceilings: Map<string, Ceiling>,
  threads: number,
  rounds: number,
): void {
  console.log(`\nCeilings (median of ${rounds} round(s)):`);
  for (const [label, c] of ceilings) console.log(`  ${ceilingLine(label, c, threads)}`);
  printSection(int8Lines([], ceilings, 0));
  console.log(`load average at end: ${loadAvg()}`);
}
