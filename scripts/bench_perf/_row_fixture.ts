/** A measured row for the bench_perf tests: what was measured, where, and the wrk figures given. */
import type { Row } from "./rounds.ts";
import type { WrkResult } from "../_wrk.ts";

export function row(what: string, backend: string, conns: number, r: Partial<WrkResult>): Row {
  const cpu = { main: 0, other: 0, wrk: 0 };
  return {
    what,
    backend,
    body: "raw",
    conns,
    r: { rps: 0, p50: 0, p99: 0, p999: 0, errors: "", load: "", cpu, ...r },
  };
}
