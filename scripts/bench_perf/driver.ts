/**
 * bench_perf's driver: starts every server once (the hello route, then per runtime, a backend
 * with one serving graph, the service at each replica count and the baseline), checks that each
 * answers the same thing, then runs the rounds (the ceilings, then wrk on every target) and hands
 * the median round to the report; with --ceilings-only, rounds of ceilings alone.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeGreyPng } from "../../common/image_codec.ts";
import { IMAGE_SIZE } from "../../common/labels.ts";
import {
  choosePrecision,
  decodeProbePixels,
  type Manifest,
  type Precision,
  precisionsOf,
} from "../../bundle/mod.ts";
import { manifestOf, TINY_BUNDLE } from "../../testkit/fixtures.ts";
import {
  answeringPids,
  SERVE_MAIN,
  SERVE_PERMISSIONS,
  type ServerProcess,
  startServer as startServerProcess,
} from "../../testkit/server_process.ts";
import { batchSummary, scrape } from "./metrics.ts";
import { bundleDir } from "../_cli.ts";
import { loadAvg } from "../_proc.ts";
import { ceilingLine, report, reportCeilings } from "./report.ts";
import {
  type Ceiling,
  medianOfRounds,
  type Round,
  type Row,
  type Runtime,
  runtimesOf,
} from "./rounds.ts";
import { runWrk, wrkGetScript, wrkPostScript } from "../_wrk.ts";

/** The entry script: the roles are this script started with --role. */
const SELF = new URL("../bench_perf.ts", import.meta.url).pathname;

/** The flags of a bench_perf run, parsed (scripts/bench_perf.ts documents each). */
export interface BenchOptions {
  bundle?: string;
  registry: string;
  duration: number;
  rounds: number;
  connections: number;
  backends: string[];
  /** The serving graphs to measure on every backend; auto: those the bundle has. */
  precisions: Precision[] | "auto";
  workers: number;
  threads: number;
  replicas: number[];
  maxQueueDelayMs: number;
  pipelineDepth: number;
  baselineThreads: number;
  ceilingThreads: number;
  ceilingsOnly: boolean;
  png: boolean;
  wrk: string;
}

/** One load test: a server, a body, a connection count. */
interface Target {
  what: string;
  label: string;
  /** The onnxruntime backend ("native", "wasm"), "-" for the hello route. */
  backend: string;
  body: string;
  conns: number;
  lua: string;
  url: string;
  base: string;
  pids: number[];
  metrics: boolean;
}

/** The request bodies and their wrk scripts. */
interface Bodies {
  px: Uint8Array;
  png: Uint8Array;
  rawLua: string;
  pngLua: string;
  getLua: string;
}

/**
 * A server process (this script in a server role, or serve/main.ts) on a free loopback port;
 * stop() sends SIGTERM, then SIGKILL after 5 s.
 */
function startServer(
  script: string,
  args: string[],
  extraPermissions: string[] = [],
): Promise<ServerProcess> {
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
    if (performance.now() > end) {
      throw new Error(`only ${seen.size} of ${n} replicas answered at ${url}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
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

/** The compute ceiling of runtime `rt`, measured by this script in the ceiling role. */
async function ceiling(o: BenchOptions, bundle: string, rt: Runtime): Promise<Ceiling> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...SERVE_PERMISSIONS,
      SELF,
      ...["--role", "ceiling", "--bundle", bundle, "--backend", rt.backend],
      ...["--precision", rt.precision, "--threads", String(o.ceilingThreads)],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (out.code !== 0) {
    throw new Error(`ceiling ${rt.label}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(text) as Ceiling;
}

/** The servers of one runtime: the service once per replica count, then the baseline. */
function serverKinds(o: BenchOptions, bundle: string, rt: Runtime) {
  const b = rt.backend, precision = rt.precision;
  const svcArgs = [
    ...["--host", "127.0.0.1", "--port", "0", "--bundle", bundle, "--backend", b],
    ...["--precision", precision],
    ...["--workers", String(o.workers), "--threads", String(o.threads)],
    ...["--max-queue-delay-ms", String(o.maxQueueDelayMs)],
    ...["--pipeline-depth", String(o.pipelineDepth), "--no-watch", "--poll-ms", "0"],
  ];
  const baseArgs = [
    ...["--role", "baseline", "--backend", b, "--precision", precision, "--bundle", bundle],
    ...["--threads", String(o.baselineThreads), "--port", "0"],
  ];
  // The service once per replica count (label "native-int8 x2" for 2), then the baseline.
  const kinds = o.replicas.map((n) => ({
    what: "service",
    label: n === 1 ? rt.label : `${rt.label} x${n}`,
    script: SERVE_MAIN,
    // --replicas N: the service starts and supervises the other N-1 processes itself.
    args: n === 1 ? svcArgs : [...svcArgs, "--replicas", String(n)],
    n,
  }));
  kinds.push({ what: "baseline", label: rt.label, script: SELF, args: baseArgs, n: 1 });
  return kinds;
}

/** Starts every server (pushed onto `servers` as it starts) and lists the load tests. */
async function startTargets(
  o: BenchOptions,
  bundle: string,
  runtimes: Runtime[],
  bodies: Bodies,
  servers: ServerProcess[],
): Promise<Target[]> {
  const C = o.connections;
  const hello = await startServer(SELF, ["--role", "hello", "--port", "0"]);
  servers.push(hello);
  const targets: Target[] = [{
    what: "hello",
    label: "-",
    backend: "-",
    body: "GET",
    conns: C,
    lua: bodies.getLua,
    url: `${hello.url}/hello`,
    base: hello.url,
    pids: [hello.pid],
    metrics: false,
  }];
  for (const rt of runtimes) {
    for (const { what, label, script, args, n } of serverKinds(o, bundle, rt)) {
      const s = await startServer(script, args, n > 1 ? ["--allow-run"] : []);
      servers.push(s);
      const pids = n > 1 ? await replicaPids(s.url, n) : [s.pid];
      const url = `${s.url}/v1/classify`;
      // Both must answer, and the same thing (same model, same preprocessing).
      const a = await post(url, bodies.px, "application/octet-stream") as {
        predictions: unknown[];
      };
      if (a.predictions.length !== 1) throw new Error(`${what}: unexpected response`);
      await post(url, bodies.png, "image/png");
      const list: [string, string][] = [["raw", bodies.rawLua]];
      if (o.png) list.push(["png", bodies.pngLua]);
      // Batching is summarised for single-process rows (replicas label their samples per pid).
      const metrics = what === "service" && n === 1;
      const common = { what, label, backend: rt.backend, url, base: s.url, pids, metrics };
      for (const [body, lua] of list) targets.push({ ...common, body, conns: C, lua });
      targets.push({ ...common, body: "raw", conns: 1, lua: bodies.rawLua });
    }
  }
  return targets;
}

/** One round: every ceiling, then every target under wrk (warmed up in the first round). */
async function runRound(
  o: BenchOptions,
  bundle: string,
  runtimes: Runtime[],
  targets: Target[],
  round: number,
): Promise<Round> {
  const workers = o.workers || navigator.hardwareConcurrency;
  console.log(`round ${round} of ${o.rounds}, load average ${loadAvg()}`);
  const ceilings = await ceilingsOfRound(o, bundle, runtimes);
  const rows: Row[] = [];
  for (const t of targets) {
    const run = { wrk: o.wrk, url: t.url, pids: t.pids, connections: t.conns, script: t.lua };
    // Warm-up: JIT, arenas, connections.
    if (round === 1 && t.what !== "hello") await runWrk({ ...run, seconds: 2 }).catch(() => {});
    const m0 = t.metrics ? await scrape(t.base) : null;
    const t0 = performance.now();
    const r = await runWrk({ ...run, seconds: o.duration });
    const wall = (performance.now() - t0) / 1000;
    const batching = m0
      ? batchSummary(m0, await scrape(t.base), wall, t.backend === "native" ? 1 : workers)
      : undefined;
    rows.push({ what: t.what, backend: t.label, body: t.body, conns: t.conns, r, batching });
    console.log(`  ${t.what} ${t.label} ${t.body} c${t.conns}: ${r.rps.toFixed(0)} req/s`);
  }
  return { ceilings, rows };
}

/** Every runtime's ceiling, keyed by its label, each printed as it is measured. */
async function ceilingsOfRound(
  o: BenchOptions,
  bundle: string,
  runtimes: Runtime[],
): Promise<Map<string, Ceiling>> {
  const ceilings = new Map<string, Ceiling>();
  for (const rt of runtimes) {
    const c = await ceiling(o, bundle, rt);
    ceilings.set(rt.label, c);
    console.log(`  ${ceilingLine(rt.label, c, o.ceilingThreads)}`);
  }
  return ceilings;
}

/** Rounds of ceilings alone (no servers, no wrk): the medians and the int8 / fp32 ratios. */
async function ceilingsOnly(o: BenchOptions, bundle: string, runtimes: Runtime[]) {
  const perRound: Round[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    console.log(`round ${round} of ${o.rounds}, load average ${loadAvg()}`);
    perRound.push({ ceilings: await ceilingsOfRound(o, bundle, runtimes), rows: [] });
  }
  reportCeilings(medianOfRounds(perRound).ceilings, o.ceilingThreads, o.rounds);
}

/**
 * Every backend with every precision asked for; "auto" takes the bundle's, and one it lacks is
 * an error naming the bundle.
 */
function benchRuntimes(o: BenchOptions, bundle: string, manifest: Manifest): Runtime[] {
  const precisions = o.precisions === "auto"
    ? precisionsOf(manifest)
    : o.precisions.map((p) => choosePrecision(manifest, p, bundle));
  return runtimesOf(o.backends, [...new Set(precisions)]);
}

/** The bundle to measure: --bundle, else the registry's active model, else the tiny bundle. */
async function benchBundle(o: BenchOptions): Promise<string> {
  try {
    return await bundleDir(o.bundle, o.registry);
  } catch {
    return TINY_BUNDLE;
  }
}

/** The whole benchmark; prints progress, then the report. */
export async function runBench(o: BenchOptions): Promise<number> {
  const bundle = await benchBundle(o);
  const manifest = manifestOf(bundle);
  const runtimes = benchRuntimes(o, bundle, manifest);
  const what = o.ceilingsOnly ? "ceilings only" : `wrk ${o.duration}s per row, loopback`;
  console.log(
    `bench_perf: bundle ${bundle} (${manifest.name}@${manifest.version}), ${navigator.hardwareConcurrency} CPUs (shared), ${what}; runtimes ${
      runtimes.map((r) => r.label).join(", ")
    }`,
  );
  console.log(`load average at start: ${loadAvg()}`);
  if (o.ceilingsOnly) {
    await ceilingsOnly(o, bundle, runtimes);
    return 0;
  }
  const px = decodeProbePixels(manifest.probe.cases[0].pixels);
  const png = encodeGreyPng(px, IMAGE_SIZE, IMAGE_SIZE);
  const tmp = await mkdtemp(join(tmpdir(), "bench-perf-"));
  const bodies: Bodies = {
    px,
    png,
    rawLua: await wrkPostScript(tmp, "raw", px, "application/octet-stream"),
    pngLua: await wrkPostScript(tmp, "png", png, "image/png"),
    getLua: await wrkGetScript(tmp),
  };
  // Every server is started first and stays up (idle servers use no CPU), so that each round
  // measures every row within minutes of the others, and rounds repeat the whole sequence:
  // the machine's speed drifts over minutes (docs/performance.md), so a ratio is taken within
  // a round and the median over rounds is reported.
  const servers: ServerProcess[] = [];
  const perRound: Round[] = [];
  try {
    const targets = await startTargets(o, bundle, runtimes, bodies, servers);
    for (let round = 1; round <= o.rounds; round++) {
      perRound.push(await runRound(o, bundle, runtimes, targets, round));
    }
  } finally {
    for (const s of servers.reverse()) await s.stop().catch(() => {});
    await rm(tmp, { recursive: true, force: true });
  }
  const { rows, ceilings } = medianOfRounds(perRound);
  report(rows, ceilings, o.connections, o.rounds);
  return 0;
}
