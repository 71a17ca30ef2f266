/**
 * bench_perf's measurements and how rounds combine: one Row per (server, backend, body,
 * connections), measured once per round; the reported row is the round with the median req/s,
 * with ratios to the ceiling and the baseline taken within each round (same minutes, same
 * machine state) and their median over rounds.
 */
import type { Precision } from "../../bundle/mod.ts";
import type { BatchSummary } from "./metrics.ts";
import type { WrkResult } from "../_wrk.ts";

/**
 * Images/s of one in-process session.run() at N=1 and N=256, and images per CPU-second of the
 * process (all threads) at each.
 */
export interface Ceiling {
  n1: number;
  n256: number;
  cpu1?: number;
  cpu256?: number;
}

/** A backend running one serving graph: its own servers, ceiling and rows. */
export interface Runtime {
  backend: "native" | "wasm";
  precision: Precision;
  /** "native" for fp32, "native-int8" for int8. */
  label: string;
}

/** Every backend with every precision, backend by backend, fp32 first. */
export function runtimesOf(backends: string[], precisions: Precision[]): Runtime[] {
  return backends.flatMap((b) =>
    precisions.map((precision) => ({
      backend: b as Runtime["backend"],
      precision,
      label: precision === "fp32" ? b : `${b}-${precision}`,
    }))
  );
}

export interface Row {
  /** "hello", "service" or "baseline". */
  what: string;
  /** The row's label: the runtime, with " xN" for N replicas ("native x2"). */
  backend: string;
  /** "GET", "raw" or "png". */
  body: string;
  conns: number;
  r: WrkResult;
  batching?: BatchSummary;
  /** Over rounds (medianOfRounds): lowest and highest req/s, and ratios taken within a round. */
  range?: [number, number];
  perCeiling?: number;
  perBaseline?: number;
  /** Service p50 / baseline p50 of the same round, median over rounds (the c1 comparison). */
  p50PerBaseline?: number;
}

/** One round: the ceiling of each runtime and every row, in the same order every round. */
export interface Round {
  ceilings: Map<string, Ceiling>;
  rows: Row[];
}

/**
 * The runtime of a row label ("native x2" -> "native", "wasm-int8 x2" -> "wasm-int8"): whose
 * ceiling and baseline apply.
 */
export const runtimeOf = (label: string) => label.split(" ")[0];

/** The backend of a row label ("wasm-int8 x2" -> "wasm"): whose targets apply. */
export const backendOf = (label: string) => runtimeOf(label).split("-")[0];

/** The replica count of a row label ("native x2" -> 2, "native" -> 1). */
export const replicasOf = (label: string) => Number(label.split(" x")[1] ?? 1);

export const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

/** The baseline row a service row compares with: same runtime, body and connections. */
function baselineOf(rows: Row[], row: Row): Row | undefined {
  return rows.find((b) =>
    b.what === "baseline" && b.backend === runtimeOf(row.backend) && b.body === row.body &&
    b.conns === row.conns
  );
}

/**
 * One row per measurement: the round with the median req/s supplies the latencies, CPU and
 * batching shown; the ratios to the ceiling and to the baseline are computed within each round
 * (same minutes, same machine state) and their median over rounds is reported.
 */
export function medianOfRounds(perRound: Round[]): Round {
  const ceilings = new Map<string, Ceiling>();
  for (const b of perRound[0].ceilings.keys()) {
    // A figure some round lacks (no CPU time measured) is left out rather than guessed.
    const c: Partial<Ceiling> = {};
    for (const k of ["n1", "n256", "cpu1", "cpu256"] as const) {
      const v = perRound.map((p) => p.ceilings.get(b)![k]);
      if (v.every((x) => x !== undefined)) c[k] = median(v as number[]);
    }
    ceilings.set(b, c as Ceiling);
  }
  const rows = perRound[0].rows.map((_, i) => {
    const all = perRound.map((p) => p.rows[i]);
    const byRps = [...all].sort((a, b) => a.r.rps - b.r.rps);
    const mid = byRps[Math.floor((byRps.length - 1) / 2)];
    const x = all[0];
    const ratios = (f: (p: Round, row: Row) => number | undefined) => {
      const v = perRound.map((p) => f(p, p.rows[i])).filter((r): r is number => r !== undefined);
      return v.length ? median(v) : undefined;
    };
    return {
      ...mid,
      r: { ...mid.r, rps: median(all.map((a) => a.r.rps)) },
      range: [byRps[0].r.rps, byRps[byRps.length - 1].r.rps] as [number, number],
      perCeiling: x.what === "hello"
        ? undefined
        : ratios((p, row) => row.r.rps / p.ceilings.get(runtimeOf(row.backend))!.n256),
      perBaseline: x.what !== "service" ? undefined : ratios((p, row) => {
        const base = baselineOf(p.rows, row);
        return base ? row.r.rps / base.r.rps : undefined;
      }),
      p50PerBaseline: x.what !== "service" ? undefined : ratios((p, row) => {
        const base = baselineOf(p.rows, row);
        return base ? row.r.p50 / base.r.p50 : undefined;
      }),
    };
  });
  return { rows, ceilings };
}

/**
 * The row of server `what` for the row label `backend`: a service row by its full label
 * ("native x2"), a baseline or ceiling-bound row by the label's runtime.
 */
export function findRow(
  rows: Row[],
  what: string,
  backend: string,
  body: string,
  conns: number,
): Row | undefined {
  return rows.find((r) =>
    r.what === what &&
    r.backend === (what === "service" ? backend : runtimeOf(backend)) && r.body === body &&
    r.conns === conns
  );
}
