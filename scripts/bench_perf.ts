/**
 * Serving performance, side by side in ONE run on loopback, so that every number shares the
 * same machine state (this machine is small and shared: compare rows of one run, never runs).
 * For each backend (native = onnxruntime-node, wasm = onnxruntime-web) it measures:
 *   - the compute ceiling: one in-process session.run() at N=256 (and N=1), images/s, with
 *     --ceiling-threads threads, no HTTP at all;
 *   - the full service (serve/main.ts: worker pool + adaptive batching) on POST /v1/classify
 *     with raw 784-byte bodies (application/octet-stream) and with 28x28 PNG bodies, at
 *     --connections connections, and raw bodies at concurrency 1;
 *   - the baseline: a plain Hono server with one in-process session and no batching (requests
 *     take turns on the session), same bodies, same JSON response;
 * plus a Hono hello route (the HTTP ceiling). Every server is a separate process from wrk
 * (the load generator), started and stopped by this script. Each load test is wrk --latency
 * for --duration seconds; the table shows req/s, p50/p99/p99.9, the ratios service/ceiling
 * and service/baseline, the load average when the row ran, and the CPU each process used
 * (server main thread vs its other threads, wrk): the profile that tells whether HTTP
 * handling or inference is the limit. The batching metrics (/metrics) of every service row
 * are summarised below the table. Targets from the issue are checked and marked ok / MISS.
 *
 *   npx deno run -A scripts/bench_perf.ts [--bundle dir] [--duration s] [--backends native,wasm]
 *
 * Internal roles (used by the script on itself): --role ceiling|hello|baseline.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Hono } from "hono";
import { formatHelp, parseCommandFlags } from "../common/flags.ts";
import { encodeGreyPng } from "../common/image_codec.ts";
import { PIXELS } from "../common/labels.ts";
import { decodeProbePixels, type Manifest } from "../bundle/mod.ts";
import { resolveActive } from "../common/registry.ts";
import { bundleFile, type Precision, precisionsOf, servingRole } from "../bundle/mod.ts";
import { loadBackend, type Session } from "../serve/inference/backend.ts";
import { readImageBatch } from "../serve/inputs.ts";
import {
  answeringPids,
  SERVE_PERMISSIONS,
  type ServerProcess,
  startServer as startServerProcess,
} from "../tests/server_process.ts";

const FLAGS = {
  bundle: {
    type: "string",
    help: "bundle dir (default: the registry's active model, else tests/testdata/tiny-bundle)",
  },
  registry: {
    type: "string",
    default: "models",
    help: "registry dir used when --bundle is absent",
  },
  duration: { type: "int", default: 8, help: "seconds per wrk run (bounded)" },
  rounds: {
    type: "int",
    default: 3,
    help: "times every row is measured (interleaved); the table shows medians and the range",
  },
  connections: { type: "int", default: 32, help: "wrk connections for the throughput rows" },
  backends: { type: "string", default: "native,wasm", help: "comma-separated backends" },
  precisions: {
    type: "string",
    default: "auto",
    help:
      "comma-separated serving graphs (fp32, int8), each a runtime of its own (label <backend>-int8); auto: fp32,int8 when the bundle has int8, else fp32",
  },
  workers: { type: "int", default: 0, help: "--workers for the service (0: one per core)" },
  threads: { type: "int", default: 0, help: "--threads for the service (0: cores / workers)" },
  replicas: {
    type: "string",
    default: "1",
    help:
      "comma-separated replica counts for the service rows: N > 1 runs the service with --replicas N (N processes on one port)",
  },
  "max-queue-delay-ms": {
    type: "number",
    default: 0.3,
    help: "--max-queue-delay-ms for the service",
  },
  "pipeline-depth": { type: "int", default: 2, help: "--pipeline-depth for the service" },
  "baseline-threads": { type: "int", default: 2, help: "threads of the baseline's one session" },
  "ceiling-threads": { type: "int", default: 2, help: "threads of the compute-ceiling session" },
  "ceilings-only": {
    type: "boolean",
    default: false,
    help:
      "measure only the compute ceilings (every runtime, --rounds times, interleaved) and the int8/fp32 ratios",
  },
  png: { type: "boolean", default: true, help: "also load-test with 28x28 PNG bodies" },
  wrk: { type: "string", default: "/usr/bin/wrk", help: "wrk binary" },
  // Internal: what this process is when the script starts itself.
  role: {
    type: "string",
    default: "main",
    choices: ["main", "ceiling", "hello", "baseline"],
    help: "internal",
  },
  backend: {
    type: "string",
    default: "native",
    choices: ["native", "wasm"],
    help: "internal (roles)",
  },
  port: { type: "int", default: 0, help: "internal (server roles)" },
  precision: {
    type: "string",
    default: "fp32",
    choices: ["fp32", "int8"],
    help: "internal (ceiling and baseline roles)",
  },
  seconds: { type: "number", default: 3, help: "internal: ceiling measuring time per batch size" },
} as const;

const USAGE = "Usage: npx deno run -A scripts/bench_perf.ts [--bundle dir] [--duration s]";
const SELF = new URL(import.meta.url).pathname;
const MAIN = new URL("../serve/main.ts", import.meta.url).pathname;
const TINY = new URL("../tests/testdata/tiny-bundle", import.meta.url).pathname;

type Flags = Record<string, string | number | boolean | undefined>;

// ---------------------------------------------------------------------------------------------
// Roles run in child processes.

function readManifest(dir: string): Manifest {
  return JSON.parse(Deno.readTextFileSync(join(dir, "manifest.json")));
}

async function inProcessSession(
  dir: string,
  backend: "native" | "wasm",
  threads: number,
  precision: Precision = "fp32",
) {
  // isolate: false keeps the session on this thread: no worker, no batching, no pool.
  const { backend: b } = await loadBackend(backend, { threads, isolate: false });
  const m = readManifest(dir);
  const file = bundleFile(dir, m, servingRole(m, precision));
  const session = await b.createSession(Deno.readFileSync(file));
  return { session, manifest: m };
}

/** Back-to-back session.run() at N=1 and N=256 on one in-process session; prints JSON. */
async function roleCeiling(f: Flags): Promise<void> {
  const { session, manifest } = await inProcessSession(
    f.bundle as string,
    f.backend as "native" | "wasm",
    f.threads as number,
    f.precision as Precision,
  );
  const px = decodeProbePixels(manifest.probe.cases[0].pixels);
  const result: Record<string, number> = {};
  for (const n of [1, 256]) {
    const x = new Float32Array(n * PIXELS);
    for (let i = 0; i < n; i++) for (let j = 0; j < PIXELS; j++) x[i * PIXELS + j] = px[j] / 255;
    const feeds = { [manifest.input.name]: { data: x, dims: [n, 1, 28, 28] } };
    for (let i = 0; i < 20; i++) await session.run(feeds); // warm-up
    let images = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    while (performance.now() - t0 < (f.seconds as number) * 1000) {
      await session.run(feeds);
      images += n;
    }
    result[`n${n}`] = images / ((performance.now() - t0) / 1000);
    // Per CPU-second of this process (all threads): on busy shared cores wall time mostly
    // measures the neighbours, CPU time does not.
    const c = process.cpuUsage(c0);
    result[`cpu${n}`] = images / ((c.user + c.system) / 1e6);
  }
  await session.release();
  console.log(JSON.stringify(result));
}

function listen(app: Hono, port: number): void {
  Deno.serve({
    port,
    hostname: "127.0.0.1",
    onListen: ({ port }) => console.log(`Listening on http://127.0.0.1:${port}/`),
  }, app.fetch);
}

function roleHello(f: Flags): void {
  const app = new Hono();
  app.get("/hello", (c) => c.text("hello"));
  listen(app, f.port as number);
}

/**
 * The baseline: Hono, the service's body parsing, one in-process session with no batching
 * (requests take turns, one run each), the service's JSON response shape.
 */
async function roleBaseline(f: Flags): Promise<void> {
  const { session, manifest } = await inProcessSession(
    f.bundle as string,
    f.backend as "native" | "wasm",
    f.threads as number,
    f.precision as Precision,
  );
  const limits = { maxBodyBytes: 4 << 20, maxPixels: 25_000_000, maxBatch: 256 };
  const K = manifest.labels.length, L = manifest.latentSize, o = manifest.outputs;
  let turn: Promise<unknown> = Promise.resolve();
  const runAlone = (s: Session, feeds: Parameters<Session["run"]>[0]) => {
    const mine = turn.then(() => s.run(feeds));
    turn = mine.catch(() => {});
    return mine;
  };
  const app = new Hono();
  app.post("/v1/classify", async (c) => {
    const batch = await readImageBatch(c.req.raw, limits, "auto");
    const r = await runAlone(session, {
      [manifest.input.name]: { data: batch.images, dims: [batch.count, 1, 28, 28] },
    });
    const p = r[o.probabilities.name].data, mu = r[o.mu.name].data, lv = r[o.logvar.name].data;
    const predictions = [];
    for (let i = 0; i < batch.count; i++) {
      let index = 0;
      for (let k = 1; k < K; k++) if (p[i * K + k] > p[i * K + index]) index = k;
      predictions.push({
        label: manifest.labels[index],
        index,
        confidence: p[i * K + index],
        probabilities: Array.from(p.subarray(i * K, (i + 1) * K)),
        latent: {
          mu: Array.from(mu.subarray(i * L, (i + 1) * L)),
          logvar: Array.from(lv.subarray(i * L, (i + 1) * L)),
        },
      });
    }
    return c.json({ model: { name: manifest.name, version: manifest.version }, predictions });
  });
  listen(app, f.port as number);
}

// ---------------------------------------------------------------------------------------------
// The driver.

/**
 * A server process (this script in a server role, or serve/main.ts) on a free loopback port;
 * stop() sends SIGTERM, then SIGKILL after 5 s.
 */
function startServer(script: string, args: string[], extraPermissions: string[] = []): Promise<ServerProcess> {
  return startServerProcess(args, {
    script,
    startTimeoutMs: 90_000,
    killAfterMs: 5000,
    permissions: [...SERVE_PERMISSIONS, ...extraPermissions],
  });
}

/** The pids of the `n` replicas behind `url`, once all of them answer. */
async function replicaPids(url: string, n: number, timeoutMs = 90_000): Promise<number[]> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const seen = await answeringPids(url, 4 * n, n);
    if (seen.size === n) return [...seen];
    if (performance.now() > end) throw new Error(`only ${seen.size} of ${n} replicas answered at ${url}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** CPU seconds used so far by each thread of `pid`, grouped: the main thread and the rest. */
function cpuOf(pid: number): { main: number; other: number } {
  const tick = 100; // USER_HZ on Linux
  let main = 0, other = 0;
  for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const s = (Number(f[11]) + Number(f[12])) / tick;
      if (Number(t.name) === pid) main += s;
      else other += s;
    } catch { /* the thread ended */ }
  }
  return { main, other };
}

function loadAvg(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

interface WrkResult {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  errors: string;
  load: string;
  /** Server CPU per second of the run: main thread, other threads; wrk's. */
  cpu: { main: number; other: number; wrk: number };
}

/** wrk's latency ("1.23ms", "850.00us", "1.02s") in ms. */
function ms(v: string | undefined): number {
  const m = v?.match(/^([\d.]+)(us|ms|s)$/);
  if (!m) return NaN;
  return Number(m[1]) * (m[2] === "us" ? 1e-3 : m[2] === "s" ? 1e3 : 1);
}

async function runWrk(
  f: Flags,
  url: string,
  serverPids: number | number[],
  opts: { connections: number; script: string; seconds?: number },
): Promise<WrkResult> {
  const c = opts.connections;
  const args = [
    "-t",
    String(Math.min(2, c)),
    "-c",
    String(c),
    "-d",
    `${opts.seconds ?? f.duration}s`,
  ];
  args.push("--timeout", "5s", "--latency");
  args.push("-s", opts.script);
  args.push(url);
  const load = loadAvg();
  const pids = Array.isArray(serverPids) ? serverPids : [serverPids];
  const cpuAll = () =>
    pids.map(cpuOf).reduce((a, x) => ({ main: a.main + x.main, other: a.other + x.other }), {
      main: 0,
      other: 0,
    });
  const before = cpuAll();
  const t0 = performance.now();
  const child = new Deno.Command(f.wrk as string, { args, stdout: "piped", stderr: "piped" })
    .spawn();
  // wrk's own CPU: sampled just before it exits (it is a child of this process).
  let wrkCpu = 0;
  const sampler = setInterval(() => {
    try {
      const stat = Deno.readTextFileSync(`/proc/${child.pid}/stat`);
      const x = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      wrkCpu = (Number(x[11]) + Number(x[12])) / 100;
    } catch { /* exited */ }
  }, 200);
  const out = await child.output();
  clearInterval(sampler);
  const wall = (performance.now() - t0) / 1000;
  const after = cpuAll();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  const non2xx = Number(text.match(/Non-2xx or 3xx responses:\s+(\d+)/)?.[1] ?? 0);
  const sock = text.match(/Socket errors:(.*)$/m)?.[1]?.trim();
  return {
    rps: Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1]),
    p50: ms(text.match(/\s50%\s+(\S+)/)?.[1]),
    p99: ms(text.match(/\s99%\s+(\S+)/)?.[1]),
    p999: Number(text.match(/^P999_US (\d+)/m)?.[1]) / 1000,
    errors: [non2xx ? `${non2xx} non-2xx` : "", sock ?? ""].filter(Boolean).join("; "),
    load,
    cpu: {
      main: (after.main - before.main) / wall,
      other: (after.other - before.other) / wall,
      wrk: wrkCpu / wall,
    },
  };
}

/** wrk --latency stops at p99; this prints p99.9 (microseconds) when the run is done. */
const DONE_LUA = [
  `done = function(summary, latency, requests)`,
  `  io.write(string.format("P999_US %d\\n", latency:percentile(99.9)))`,
  `end`,
];

async function wrkGetScript(dir: string): Promise<string> {
  const lua = join(dir, "get.lua");
  await writeFile(lua, DONE_LUA.join("\n"));
  return lua;
}

async function wrkPostScript(dir: string, name: string, body: Uint8Array, type: string) {
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

async function post(url: string, body: Uint8Array, type: string): Promise<unknown> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": type },
    body: body as Uint8Array<ArrayBuffer>,
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

/** Histogram sums and counts from /metrics, keyed "name{labels}". */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = line.match(/^(inference_\w+?)(\{[^}]*\})? ([\d.e+-]+)$/);
    if (m) out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}

function batchSummary(
  a: Map<string, number>,
  b: Map<string, number>,
  wall: number,
  workers: number,
) {
  const d = (k: string) => (b.get(k) ?? 0) - (a.get(k) ?? 0);
  const g = `{graph="model"}`;
  const runs = d(`inference_batch_size_count${g}`);
  const rows = d(`inference_batch_size_sum${g}`);
  const jobs = d(`inference_queue_seconds_count${g}`);
  // Median queue wait from the histogram buckets.
  const buckets = [...b.keys()].filter((k) =>
    k.startsWith('inference_queue_seconds_bucket{graph="model"')
  )
    .map((k) => ({ le: Number(k.match(/le="([^"]+)"/)![1].replace("+Inf", "Infinity")), n: d(k) }))
    .sort((x, y) => x.le - y.le);
  const p = (q: number) => buckets.find((x) => x.n >= q * jobs)?.le ?? NaN;
  // Busy = computing: a pipelined worker's run wall time also covers the batch queued ahead.
  const busy = d(`inference_compute_seconds_sum${g}`) / wall / workers;
  return {
    runs,
    meanBatch: runs ? rows / runs : 0,
    queueMeanMs: jobs ? (d(`inference_queue_seconds_sum${g}`) / jobs) * 1000 : 0,
    queueP50Ms: p(0.5) * 1000,
    queueP99Ms: p(0.99) * 1000,
    runMeanMs: runs ? (d(`inference_run_seconds_sum${g}`) / runs) * 1000 : 0,
    computeMeanMs: runs ? (d(`inference_compute_seconds_sum${g}`) / runs) * 1000 : 0,
    busy,
  };
}

async function ceiling(f: Flags, bundle: string, backend: string, precision: Precision) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...SERVE_PERMISSIONS,
      SELF,
      "--role",
      "ceiling",
      "--bundle",
      bundle,
      "--backend",
      backend,
      "--threads",
      String(f["ceiling-threads"]),
      "--precision",
      precision,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (out.code !== 0) {
    throw new Error(`ceiling ${backend}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(text) as { n1: number; n256: number; cpu256?: number };
}

interface Row {
  what: string;
  backend: string;
  body: string;
  conns: number;
  r: WrkResult;
  batching?: ReturnType<typeof batchSummary>;
  /** Over rounds (medianOfRounds): lowest and highest req/s, and ratios taken within a round. */
  range?: [number, number];
  perCeiling?: number;
  perBaseline?: number;
  /** Service p50 / baseline p50 of the same round, median over rounds (the c1 comparison). */
  p50PerBaseline?: number;
}

/**
 * The runtime of a row label ("native x2" -> "native", "wasm-int8 x2" -> "wasm-int8"): whose
 * ceiling and baseline apply. A runtime is a backend with a serving graph (precision).
 */
const runtimeOf = (label: string) => label.split(" ")[0];

const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

/**
 * One row per measurement: the round with the median req/s supplies the latencies, CPU and
 * batching shown; the ratios to the ceiling and to the baseline are computed within each round
 * (same minutes, same machine state) and their median over rounds is reported.
 */
function medianOfRounds(
  perRound: { ceilings: Map<string, { n1: number; n256: number }>; rows: Row[] }[],
): { rows: Row[]; ceilings: Map<string, { n1: number; n256: number }> } {
  const ceilings = new Map<string, { n1: number; n256: number }>();
  for (const b of perRound[0].ceilings.keys()) {
    ceilings.set(b, {
      n1: median(perRound.map((p) => p.ceilings.get(b)!.n1)),
      n256: median(perRound.map((p) => p.ceilings.get(b)!.n256)),
    });
  }
  const baselineOf = (rows: Row[], row: Row) =>
    rows.find((b) =>
      b.what === "baseline" && b.backend === runtimeOf(row.backend) && b.body === row.body &&
      b.conns === row.conns
    );
  const rows = perRound[0].rows.map((_, i) => {
    const all = perRound.map((p) => p.rows[i]);
    const byRps = [...all].sort((a, b) => a.r.rps - b.r.rps);
    const mid = byRps[Math.floor((byRps.length - 1) / 2)];
    const x = all[0];
    const ratios = (f: (p: (typeof perRound)[number], row: Row) => number | undefined) => {
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

async function main(f: Flags): Promise<number> {
  let bundle = f.bundle as string | undefined;
  if (!bundle) {
    try {
      bundle = (await resolveActive(f.registry as string)).dir;
    } catch {
      bundle = TINY;
    }
  }
  const manifest = readManifest(bundle);
  const px = decodeProbePixels(manifest.probe.cases[0].pixels);
  const png = encodeGreyPng(px, 28, 28);
  const tmp = await mkdtemp(join(tmpdir(), "bench-perf-"));
  const rawLua = await wrkPostScript(tmp, "raw", px, "application/octet-stream");
  const pngLua = await wrkPostScript(tmp, "png", png, "image/png");
  const getLua = await wrkGetScript(tmp);
  const backends = (f.backends as string).split(",").filter(Boolean);
  const precisions =
    (f.precisions === "auto"
      ? precisionsOf(manifest)
      : (f.precisions as string).split(",").filter(Boolean)) as Precision[];
  if (precisions.some((p) => !["fp32", "int8"].includes(p))) {
    throw new Error(`--precisions takes fp32 and int8, got ${f.precisions}`);
  }
  const runtimes = backends.flatMap((b) =>
    precisions.map((precision) => ({
      b,
      precision,
      label: precision === "fp32" ? b : `${b}-${precision}`,
    }))
  );
  const replicaCounts = (f.replicas as string).split(",").map(Number);
  if (replicaCounts.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`--replicas takes positive integers, got ${f.replicas}`);
  }
  const C = f.connections as number;
  const cores = navigator.hardwareConcurrency;
  const workers = (f.workers as number) || cores;
  console.log(
    `bench_perf: bundle ${bundle} (${manifest.name}@${manifest.version}), ${cores} CPUs (shared), wrk ${f.duration}s per row, loopback`,
  );
  console.log(`load average at start: ${loadAvg()}`);
  // Every server is started first and stays up (idle servers use no CPU), so that each round
  // measures every row within minutes of the others, and rounds repeat the whole sequence:
  // on a shared machine the speed drifts by +-20% over minutes, so a ratio is taken within a
  // round and the median over rounds is reported.
  interface Target {
    what: string;
    label: string;
    backend: string;
    body: string;
    conns: number;
    lua: string;
    url: string;
    base: string;
    pids: number[];
    metrics: boolean;
  }
  if (f["ceilings-only"]) return ceilingsOnly(f, bundle, runtimes, C);
  const servers: ServerProcess[] = [];
  const targets: Target[] = [];
  const perRound: { ceilings: Map<string, { n1: number; n256: number }>; rows: Row[] }[] = [];
  const rounds = Math.max(1, f.rounds as number);
  try {
    const hello = await startServer(SELF, ["--role", "hello", "--port", "0"]);
    servers.push(hello);
    targets.push({
      what: "hello",
      label: "-",
      backend: "-",
      body: "GET",
      conns: C,
      lua: getLua,
      url: `${hello.url}/hello`,
      base: hello.url,
      pids: [hello.pid],
      metrics: false,
    });
    for (const { b, precision, label: runtime } of runtimes) {
      const svcArgs = [
        "--precision",
        precision,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--bundle",
        bundle,
        "--backend",
        b,
        "--workers",
        String(f.workers),
        "--threads",
        String(f.threads),
        "--max-queue-delay-ms",
        String(f["max-queue-delay-ms"]),
        "--pipeline-depth",
        String(f["pipeline-depth"]),
        "--no-watch",
        "--poll-ms",
        "0",
      ];
      const baseArgs = [
        "--precision",
        precision,
        "--role",
        "baseline",
        "--backend",
        b,
        "--bundle",
        bundle,
        "--threads",
        String(f["baseline-threads"]),
        "--port",
        "0",
      ];
      // The service once per replica count (label "native x2" for 2), then the baseline.
      const kinds = replicaCounts.map((n) => ({
        what: "service",
        label: n === 1 ? runtime : `${runtime} x${n}`,
        script: MAIN,
        // --replicas N: the service starts and supervises the other N-1 processes itself.
        args: n === 1 ? svcArgs : [...svcArgs, "--replicas", String(n)],
        n,
      }));
      kinds.push({ what: "baseline", label: runtime, script: SELF, args: baseArgs, n: 1 });
      for (const { what, label, script, args, n } of kinds) {
        const s = await startServer(script, args, n > 1 ? ["--allow-run"] : []);
        servers.push(s);
        const pids = n > 1 ? await replicaPids(s.url, n) : [s.pid];
        const url = `${s.url}/v1/classify`;
        // Both must answer, and the same thing (same model, same preprocessing).
        const a = await post(url, px, "application/octet-stream") as { predictions: unknown[] };
        if (a.predictions.length !== 1) throw new Error(`${what}: unexpected response`);
        await post(url, png, "image/png");
        const bodies: [string, string][] = [["raw", rawLua]];
        if (f.png) bodies.push(["png", pngLua]);
        // Batching is summarised for single-process rows (replicas label their samples per pid).
        const metrics = what === "service" && n === 1;
        for (const [body, lua] of bodies) {
          targets.push({ what, label, backend: b, body, conns: C, lua, url, base: s.url, pids, metrics });
        }
        targets.push({ what, label, backend: b, body: "raw", conns: 1, lua: rawLua, url, base: s.url, pids, metrics });
      }
    }
    for (let round = 1; round <= rounds; round++) {
      console.log(`round ${round} of ${rounds}, load average ${loadAvg()}`);
      const ceilings = new Map<string, { n1: number; n256: number }>();
      for (const { b, precision, label } of runtimes) {
        const c = await ceiling(f, bundle, b, precision);
        ceilings.set(label, c);
        console.log(
          `  ceiling ${label}: N=256 ${c.n256.toFixed(0)} images/s (${
            (1000 / c.n256).toFixed(4)
          } ms/image), N=1 ${c.n1.toFixed(0)} images/s (${(1000 / c.n1).toFixed(4)} ms/image), ${
            f["ceiling-threads"]
          } thread(s)`,
        );
      }
      const rows: Row[] = [];
      for (const t of targets) {
        // Warm-up: JIT, arenas, connections.
        if (round === 1 && t.what !== "hello") {
          await runWrk(f, t.url, t.pids, { connections: t.conns, script: t.lua, seconds: 2 })
            .catch(() => {});
        }
        const m0 = t.metrics ? await scrape(t.base) : null;
        const t0 = performance.now();
        const r = await runWrk(f, t.url, t.pids, { connections: t.conns, script: t.lua });
        const wall = (performance.now() - t0) / 1000;
        const batching = m0
          ? batchSummary(m0, await scrape(t.base), wall, t.backend === "native" ? 1 : workers)
          : undefined;
        rows.push({ what: t.what, backend: t.label, body: t.body, conns: t.conns, r, batching });
        console.log(`  ${t.what} ${t.label} ${t.body} c${t.conns}: ${r.rps.toFixed(0)} req/s`);
      }
      perRound.push({ ceilings, rows });
    }
  } finally {
    for (const s of servers.reverse()) await s.stop().catch(() => {});
    await rm(tmp, { recursive: true, force: true });
  }
  const { rows, ceilings } = medianOfRounds(perRound);
  report(rows, ceilings, C, rounds);
  return 0;
}

/** Rounds of ceilings alone (no servers): the medians and the int8 / fp32 ratios. */
async function ceilingsOnly(
  f: Flags,
  bundle: string,
  runtimes: { b: string; precision: Precision; label: string }[],
  C: number,
): Promise<number> {
  const all = new Map<string, { n1: number[]; n256: number[]; cpu256: number[] }>();
  for (let round = 1; round <= Math.max(1, f.rounds as number); round++) {
    for (const { b, precision, label } of runtimes) {
      const c = await ceiling(f, bundle, b, precision);
      const e = all.get(label) ?? { n1: [], n256: [], cpu256: [] };
      e.n1.push(c.n1);
      e.n256.push(c.n256);
      e.cpu256.push(c.cpu256 ?? NaN);
      all.set(label, e);
      console.log(
        `  round ${round} ceiling ${label}: N=256 ${c.n256.toFixed(0)}, N=1 ${
          c.n1.toFixed(0)
        } images/s; N=256 ${(c.cpu256 ?? NaN).toFixed(0)} images per CPU-second`,
      );
    }
  }
  const ceilings = new Map(
    [...all].map((
      [k, v],
    ) => [k, { n1: median(v.n1), n256: median(v.n256), cpu256: median(v.cpu256) }]),
  );
  reportInt8(ceilings, () => undefined, C);
  console.log(`(medians over rounds; load average at end: ${loadAvg()})`);
  return 0;
}

/** fp32 vs int8 of each backend, from the same run: ceilings and (when measured) the service. */
function reportInt8(
  ceilings: Map<string, { n1: number; n256: number; cpu256?: number }>,
  service: (label: string) => Row | undefined,
  C: number,
): void {
  console.log("\nint8 vs fp32 (same run; target: ceiling N=256 >= 2x):");
  for (const [label, c] of ceilings) {
    const fp32 = ceilings.get(label.replace(/-int8$/, ""));
    if (!label.endsWith("-int8") || !fp32) continue;
    const r = c.n256 / fp32.n256;
    console.log(
      `  ${r >= 2 ? "ok  " : "MISS"} ceiling ${label} N=256 ${c.n256.toFixed(0)} img/s = ${
        r.toFixed(2)
      }x fp32 (${fp32.n256.toFixed(0)}); N=1 ${(c.n1 / fp32.n1).toFixed(2)}x${
        c.cpu256 && fp32.cpu256
          ? `; per CPU-second N=256 ${(c.cpu256 / fp32.cpu256).toFixed(2)}x`
          : ""
      }`,
    );
    const s = service(label), s0 = service(label.replace(/-int8$/, ""));
    if (s && s0) {
      console.log(
        `       service raw c${C}: ${s.r.rps.toFixed(0)} vs ${s0.r.rps.toFixed(0)} req/s (${
          (s.r.rps / s0.r.rps).toFixed(2)
        }x)`,
      );
    }
  }
}

function report(
  rows: Row[],
  ceilings: Map<string, { n1: number; n256: number }>,
  C: number,
  rounds: number,
): void {
  const find = (what: string, backend: string, body: string, conns: number) =>
    rows.find((r) =>
      r.what === what &&
      r.backend === (what === "service" ? backend : runtimeOf(backend)) && r.body === body &&
      r.conns === conns
    );
  const head = [
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
  const table = rows.map((x) => {
    const ceil = ceilings.get(runtimeOf(x.backend))?.n256;
    const base = x.what === "service" ? find("baseline", x.backend, x.body, x.conns) : undefined;
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
      x.perBaseline !== undefined ? x.perBaseline.toFixed(2) : base ? (x.r.rps / base.r.rps).toFixed(2) : "",
      x.r.cpu.main.toFixed(2),
      x.r.cpu.other.toFixed(2),
      x.r.cpu.wrk.toFixed(2),
      x.r.load,
      x.r.errors,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  const line = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |";
  console.log("");
  console.log(
    [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...table.map(line)]
      .join("\n"),
  );
  console.log(
    "cpu main/other: CPU-seconds per second used by the server's main (HTTP) thread and by its other threads (inference workers, onnxruntime, GC) during the row; cpu wrk: the load generator's.",
  );
  console.log(
    `${rounds} round(s): req/s is the median and range the lowest-highest over rounds; /ceiling and /baseline are medians of ratios taken within each round; latencies, CPU, load and batching come from the round with the median req/s.`,
  );
  console.log("\nBatching (service rows, from /metrics deltas):");
  for (const x of rows) {
    if (!x.batching) continue;
    const b = x.batching;
    console.log(
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
  reportInt8(ceilings, (label) => find("service", label, "raw", C), C);
  console.log("\nTargets (issue):");
  const check = (ok: boolean, what: string) => console.log(`  ${ok ? "ok  " : "MISS"} ${what}`);
  for (const b of new Set(rows.filter((r) => r.what === "service").map((r) => r.backend))) {
    const s = find("service", b, "raw", C), base = find("baseline", b, "raw", C);
    const s1 = find("service", b, "raw", 1), b1 = find("baseline", b, "raw", 1);
    const ceil = ceilings.get(runtimeOf(b))?.n256;
    if (!s || !base || !ceil) continue;
    const perCeil = s.perCeiling ?? s.r.rps / ceil;
    const perBase = s.perBaseline ?? s.r.rps / base.r.rps;
    // Little's law for a closed loop of C connections: mean latency = C / throughput, and the
    // throughput cannot pass the compute ceiling, so C / ceiling is a floor on the mean latency
    // (and so on p99) that no server design beats with this model on this machine.
    const floorMs = (C / ceil) * 1000;
    console.log(
      `  note ${b}: at ${C} connections even 100% of the ceiling (${
        ceil.toFixed(0)
      } img/s) means a mean latency of ${floorMs.toFixed(2)} ms (Little's law)`,
    );
    if (runtimeOf(b).startsWith("wasm")) {
      check(
        perCeil >= 0.8,
        `${b} raw c${C}: ${s.r.rps.toFixed(0)} req/s >= 80% of ceiling ${ceil.toFixed(0)} (${
          (perCeil * 100).toFixed(0)
        }%)`,
      );
      check(perBase >= 1.3, `${b} raw c${C}: >= 1.3x baseline (${perBase.toFixed(2)}x)`);
      check(s.r.p99 <= 15, `${b} raw c${C}: p99 ${s.r.p99.toFixed(2)} ms <= 15 ms`);
    } else {
      if (b.includes(" x")) {
        check(perCeil >= 0.8, `${b} raw c${C}: >= 80% of ceiling (${(perCeil * 100).toFixed(0)}%)`);
      }
      check(s.r.rps >= 20000, `${b} raw c${C}: ${s.r.rps.toFixed(0)} req/s >= 20000`);
      check(perBase >= 4, `${b} raw c${C}: >= 4x baseline (${perBase.toFixed(2)}x)`);
      check(s.r.p99 <= 5, `${b} raw c${C}: p99 ${s.r.p99.toFixed(2)} ms <= 5 ms`);
    }
    if (s1 && b1) {
      // Paired within each round (the median of service p50 / baseline p50 over rounds).
      const rel = s1.p50PerBaseline ?? s1.r.p50 / b1.r.p50;
      check(
        rel <= 1.1,
        `${b} raw c1: service p50 ${rel.toFixed(2)}x the baseline's (median round: ${
          s1.r.p50.toFixed(3)
        } vs ${b1.r.p50.toFixed(3)} ms; within 10% counts as no worse)`,
      );
    }
  }
  console.log(`load average at end: ${loadAvg()}`);
}

if (import.meta.main) {
  let f: Flags;
  try {
    const parsed = parseCommandFlags(Deno.args, FLAGS, USAGE, {});
    if (!parsed) Deno.exit(0);
    f = parsed as Flags;
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${formatHelp(USAGE, FLAGS)}`);
    Deno.exit(2);
  }
  const role = f.role as string;
  if (role === "ceiling") {
    await roleCeiling(f);
    Deno.exit(0);
  } else if (role === "hello") {
    roleHello(f);
  } else if (role === "baseline") {
    if (!f.threads) f.threads = 2;
    await roleBaseline(f);
  } else {
    try {
      Deno.exit(await main(f));
    } catch (e) {
      console.error(`bench_perf: ${(e as Error).message}`);
      Deno.exit(1);
    }
  }
}
