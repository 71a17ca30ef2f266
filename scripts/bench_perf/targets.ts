/**
 * The serving targets bench_perf checks (from the performance issue), as data: per backend, a
 * list of bounds on the service's figures for raw bodies (every precision of the backend gets
 * the same list), the int8/fp32 ceiling ratio; and their evaluation against one run's rows, each
 * result a line saying the figure and the bound.
 */
import type { Row } from "./rounds.ts";

export type TargetMetric =
  /** Service req/s at --connections. */
  | "rps"
  /** Service req/s / the runtime's compute ceiling (N=256), within a round. */
  | "perCeiling"
  /** Service req/s / the baseline's, within a round. */
  | "perBaseline"
  /** Service p99 latency in ms at --connections. */
  | "p99Ms"
  /** Service p50 / baseline p50 at concurrency 1, within a round. */
  | "c1P50PerBaseline";

/** One bound: the metric must be >= atLeast, or <= atMost. */
export interface Target {
  metric: TargetMetric;
  atLeast?: number;
  atMost?: number;
  /** Checked only on the service at more than one replica. */
  replicasOnly?: boolean;
}

export const TARGETS: Readonly<Record<string, readonly Target[]>> = {
  native: [
    { metric: "perCeiling", atLeast: 0.8, replicasOnly: true },
    { metric: "rps", atLeast: 20000 },
    { metric: "perBaseline", atLeast: 4 },
    { metric: "p99Ms", atMost: 5 },
    { metric: "c1P50PerBaseline", atMost: 1.1 },
  ],
  wasm: [
    { metric: "perCeiling", atLeast: 0.8 },
    { metric: "perBaseline", atLeast: 1.3 },
    { metric: "p99Ms", atMost: 15 },
    { metric: "c1P50PerBaseline", atMost: 1.1 },
  ],
};

/** int8 ceiling (N=256) / the fp32 ceiling of the same backend, within one run. */
export const INT8_CEILING_RATIO: Readonly<{ atLeast: number }> = { atLeast: 2 };

/** The rows one runtime's targets are checked on (raw bodies). */
export interface TargetRows {
  /** The service's row label ("native", "native-int8 x2"). */
  label: string;
  /** The service's replica count (replicasOnly targets need more than 1). */
  replicas: number;
  conns: number;
  service: Row;
  baseline: Row;
  /** The concurrency-1 rows; the c1 target is skipped without them. */
  service1?: Row;
  baseline1?: Row;
  /** The runtime's compute ceiling, images/s at N=256. */
  ceiling: number;
}

export interface TargetResult {
  ok: boolean;
  text: string;
}

/** The metric's value and the line describing it against `bound`, or null when not measured. */
function measure(
  t: TargetRows,
  metric: TargetMetric,
  bound: number,
): { value: number; text: string } | null {
  const { label: b, conns: C, service: s, baseline: base, ceiling: ceil } = t;
  switch (metric) {
    case "rps":
      return { value: s.r.rps, text: `${b} raw c${C}: ${s.r.rps.toFixed(0)} req/s >= ${bound}` };
    case "perCeiling": {
      const v = s.perCeiling ?? s.r.rps / ceil;
      return {
        value: v,
        text: `${b} raw c${C}: ${s.r.rps.toFixed(0)} req/s >= ${bound * 100}% of ceiling ${
          ceil.toFixed(0)
        } (${(v * 100).toFixed(0)}%)`,
      };
    }
    case "perBaseline": {
      const v = s.perBaseline ?? s.r.rps / base.r.rps;
      return { value: v, text: `${b} raw c${C}: >= ${bound}x baseline (${v.toFixed(2)}x)` };
    }
    case "p99Ms":
      return {
        value: s.r.p99,
        text: `${b} raw c${C}: p99 ${s.r.p99.toFixed(2)} ms <= ${bound} ms`,
      };
    case "c1P50PerBaseline": {
      const s1 = t.service1, b1 = t.baseline1;
      if (!s1 || !b1) return null;
      // Paired within each round (the median of service p50 / baseline p50 over rounds).
      const v = s1.p50PerBaseline ?? s1.r.p50 / b1.r.p50;
      return {
        value: v,
        text: `${b} raw c1: service p50 ${v.toFixed(2)}x the baseline's (median round: ${
          s1.r.p50.toFixed(3)
        } vs ${b1.r.p50.toFixed(3)} ms; within ${
          Math.round((bound - 1) * 100)
        }% counts as no worse)`,
      };
    }
  }
}

/** Each of `targets` checked on `rows`, in order; targets whose rows are missing are left out. */
export function checkTargets(rows: TargetRows, targets: readonly Target[]): TargetResult[] {
  const out: TargetResult[] = [];
  for (const t of targets) {
    if (t.replicasOnly && rows.replicas <= 1) continue;
    const bound = t.atLeast ?? t.atMost;
    if (bound === undefined) throw new Error(`target ${t.metric} has no bound`);
    const m = measure(rows, t.metric, bound);
    if (!m) continue;
    out.push({ ok: t.atLeast !== undefined ? m.value >= bound : m.value <= bound, text: m.text });
  }
  return out;
}
