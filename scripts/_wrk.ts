/**
 * Running wrk (the load generator) for the serving benchmarks (bench_perf.ts, bench_serve.ts):
 * the Lua scripts that make it POST a body and print p99.9, one bounded run against a URL with
 * the CPU the servers and wrk used meanwhile, and the parsing of its report.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cpuOf, loadAvg, processCpu } from "./_proc.ts";

/** What wrk reports, as numbers (latencies in ms). */
export interface WrkFigures {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  /** Non-2xx responses and socket errors, "" when there were none. */
  errors: string;
}

export interface WrkResult extends WrkFigures {
  /** The load average when the run started. */
  load: string;
  /** Server CPU per second of the run: main thread, other threads; wrk's. */
  cpu: { main: number; other: number; wrk: number };
}

/** wrk's latency ("1.23ms", "850.00us", "1.02s") in ms. */
export function ms(v: string | undefined): number {
  const m = v?.match(/^([\d.]+)(us|ms|s)$/);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === "us" ? 1e-3 : m[2] === "s" ? 1e3 : 1);
}

/** The figures of a `wrk --latency` report run with one of this module's Lua scripts. */
export function parseWrkReport(text: string): WrkFigures {
  const non2xx = Number(text.match(/Non-2xx or 3xx responses:\s+(\d+)/)?.[1] ?? 0);
  const sock = text.match(/Socket errors:(.*)$/m)?.[1]?.trim();
  return {
    rps: Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1]),
    p50: ms(text.match(/\s50%\s+(\S+)/)?.[1]),
    p99: ms(text.match(/\s99%\s+(\S+)/)?.[1]),
    p999: Number(text.match(/^P999_US (\d+)/m)?.[1]) / 1000,
    errors: [non2xx ? `${non2xx} non-2xx` : "", sock ?? ""].filter(Boolean).join("; "),
  };
}

/** wrk --latency stops at p99; this prints p99.9 (microseconds) when the run is done. */
const DONE_LUA = [
  `done = function(summary, latency, requests)`,
  `  io.write(string.format("P999_US %d\\n", latency:percentile(99.9)))`,
  `end`,
];

/** A Lua script for GET requests, written into `dir`. */
export async function wrkGetScript(dir: string): Promise<string> {
  const lua = join(dir, "get.lua");
  await writeFile(lua, DONE_LUA.join("\n"));
  return lua;
}

/** A Lua script that POSTs `body` as `type`, written (with the body) into `dir`. */
export async function wrkPostScript(
  dir: string,
  name: string,
  body: Uint8Array,
  type: string,
): Promise<string> {
  const bodyPath = join(dir, `${name}.bin`), lua = join(dir, `${name}.lua`);
  await writeFile(bodyPath, body);
  await writeFile(
    lua,
    [
      ...DONE_LUA,
      `local f = assert(io.open(${JSON.stringify(bodyPath)}, "rb"))`,
      `wrk.method = "POST"`,
      `wrk.body = f:read("*all")`,
      `f:close()`,
      `wrk.headers["Content-Type"] = ${JSON.stringify(type)}`,
    ].join("\n"),
  );
  return lua;
}

export interface WrkRun {
  /** The wrk binary. */
  wrk: string;
  url: string;
  /** The processes whose CPU is measured during the run (a service and its replicas). */
  pids: number[];
  connections: number;
  /** A Lua script from wrkGetScript or wrkPostScript. */
  script: string;
  seconds: number;
}

/** One wrk run (bounded by `seconds`, 5 s request timeout); throws when wrk fails. */
export async function runWrk(run: WrkRun): Promise<WrkResult> {
  const c = run.connections;
  const args = ["-t", String(Math.min(2, c)), "-c", String(c), "-d", `${run.seconds}s`];
  args.push("--timeout", "5s", "--latency", "-s", run.script, run.url);
  const load = loadAvg();
  const cpuAll = () =>
    run.pids.map(cpuOf).reduce((a, x) => ({ main: a.main + x.main, other: a.other + x.other }), {
      main: 0,
      other: 0,
    });
  const before = cpuAll();
  const t0 = performance.now();
  const child = new Deno.Command(run.wrk, { args, stdout: "piped", stderr: "piped" }).spawn();
  // wrk's own CPU: sampled until just before it exits (it is a child of this process).
  let wrkCpu = 0;
  const sampler = setInterval(() => {
    try {
      wrkCpu = processCpu(child.pid);
    } catch { /* exited */ }
  }, 200);
  const out = await child.output();
  clearInterval(sampler);
  const wall = (performance.now() - t0) / 1000;
  const after = cpuAll();
  if (out.code !== 0) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  return {
    ...parseWrkReport(new TextDecoder().decode(out.stdout)),
    load,
    cpu: {
      main: (after.main - before.main) / wall,
      other: (after.other - before.other) / wall,
      wrk: wrkCpu / wall,
    },
  };
}
