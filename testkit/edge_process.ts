/**
 * The edge profile in a child process, as an edge runtime runs it, for tests/edge_serve_test.ts
 * and scripts/bench_edge.ts: `deno serve serve/edge.ts` with only --allow-net, --allow-read of
 * the code and --allow-env, `Worker` deleted from globalThis first (tests/testdata/no_worker.ts),
 * plus a static HTTP server over a registry directory (what a CDN or bucket would be), and the
 * child's RSS and CPU time from /proc (Linux).
 */
import { join } from "node:path";
import { readLines } from "../common/lines.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** A static HTTP server over the registry directory on loopback; `seen` collects the paths asked. */
export function serveRegistry(root: string, seen?: string[]): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    seen?.push(path);
    if (path.includes("..")) return new Response("bad path", { status: 400 });
    try {
      return new Response(await Deno.readFile(join(root, path)));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ ticks (100/s)
}

export function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** The line the edge logs when a version starts serving (`wasm heap N MiB, rss ...`), MiB. */
export function parseMemoryLine(line: string) {
  const m =
    /wasm heap ([\d.]+) MiB, rss ([\d.]+) MiB, js heap ([\d.]+) of ([\d.]+) MiB, external ([\d.]+) MiB/
      .exec(line);
  if (!m) throw new Error(`not an edge memory line: ${line}`);
  const [wasm, rss, heapUsed, heapTotal, external] = m.slice(1).map(Number);
  return { wasm, rss, heapUsed, heapTotal, external };
}

/** Every memory line the edge logged so far, in order (one per version it began serving). */
export function memoryLines(logs: string[]) {
  return logs.filter((l) => l.startsWith("wasm heap ")).map((l) => ({
    ...parseMemoryLine(l),
    version: l.slice(l.lastIndexOf(" serving ") + 9),
  }));
}

export interface EdgeProcess {
  url: string;
  pid: number;
  /** When the process was spawned (performance.now()). */
  started: number;
  /** Every line it printed so far. */
  logs: string[];
  stop(): Promise<void>;
}

/**
 * Spawns `deno serve serve/edge.ts` on a free loopback port with `env` (LATENT_EDGE_*);
 * `v8Flags` (benchmarks: --expose-gc) go to V8.
 */
export function startEdge(
  env: Record<string, string>,
  { v8Flags = [] }: { v8Flags?: string[] } = {},
): Promise<EdgeProcess> {
  const port = freePort();
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "serve",
      "--no-prompt",
      "--allow-net",
      `--allow-read=${ROOT}`,
      "--allow-env",
      ...(v8Flags.length ? [`--v8-flags=${v8Flags.join(",")}`] : []),
      "--preload",
      join(ROOT, "tests/testdata/no_worker.ts"),
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      join(ROOT, "serve/edge.ts"),
    ],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  const draining = Promise.all(
    [child.stdout, child.stderr].map((s) => readLines(s, (l) => logs.push(l))),
  );
  return Promise.resolve({
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    started,
    logs,
    async stop() {
      child.kill("SIGKILL"); // SIGTERM would wait for idle keep-alive connections
      await child.status;
      await draining;
    },
  });
}
