/**
 * Service benchmark, per backend: starts serve/main.ts on a free loopback port, measures the
 * latency of one 28x28 PNG through POST /v1/classify at concurrency 1 (p50/p90/p99 over
 * sequential fetches after a warm-up), then the throughput at 32 connections with wrk for a
 * bounded time, and prints one table. Loopback only; each server is stopped before the next.
 *
 *   npx deno run -A scripts/bench_serve.ts --bundle tests/testdata/tiny-bundle [--duration 10]
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FlagError, formatHelp, parseFlags } from "../common/flags.ts";
import { encodeGreyPng } from "../common/image_codec.ts";
import { resolveActive } from "../common/registry.ts";
import { imageAt, readTestImages } from "../tests/service_helpers.ts";

const FLAGS = {
  bundle: { type: "string", help: "bundle dir (default: the registry's active model)" },
  registry: {
    type: "string",
    default: "models",
    help: "registry dir used when --bundle is absent",
  },
  backends: { type: "string", default: "native,wasm", help: "comma-separated backends to measure" },
  threads: { type: "int", default: 2, help: "--threads passed to the server" },
  requests: {
    type: "int",
    default: 500,
    help: "sequential requests for the concurrency-1 latency",
  },
  connections: { type: "int", default: 32, help: "wrk connections" },
  duration: { type: "int", default: 10, help: "wrk seconds per backend (bounded)" },
  wrk: { type: "string", default: "/usr/bin/wrk", help: "wrk binary" },
} as const;

const USAGE = "Usage: npx deno run -A scripts/bench_serve.ts [flags]";
const MAIN = new URL("../serve/main.ts", import.meta.url).pathname;

async function startServer(args: string[]): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-net",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      MAIN,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      ...args,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start in 60 s:\n${log.join("\n")}`)),
      60_000,
    );
    const read = async (s: ReadableStream<Uint8Array>) => {
      let buf = "";
      for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          log.push(line);
          const m = line.match(/Listening on (http:\/\/[^/]+)\//);
          if (m) clearTimeout(timer), resolve(m[1].replace("localhost", "127.0.0.1"));
        }
      }
    };
    void read(child.stdout);
    void read(child.stderr);
    void child.status.then((st) =>
      reject(new Error(`server exited (${st.code}):\n${log.join("\n")}`))
    );
  });
  if (!log.some((l) => l.startsWith("Model "))) {
    throw new Error(`server started without a model:\n${log.join("\n")}`);
  }
  return {
    url,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function latency(
  url: string,
  png: Uint8Array,
  n: number,
): Promise<{ p50: number; p90: number; p99: number }> {
  const once = async () => {
    const t = performance.now();
    const res = await fetch(`${url}/v1/classify`, {
      method: "POST",
      headers: { "Content-Type": "image/png" },
      body: png as Uint8Array<ArrayBuffer>,
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`classify answered ${res.status}`);
    return performance.now() - t;
  };
  for (let i = 0; i < 50; i++) await once(); // warm-up: JIT, session arenas, connection
  const ms: number[] = [];
  for (let i = 0; i < n; i++) ms.push(await once());
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 50), p90: percentile(ms, 90), p99: percentile(ms, 99) };
}

async function runWrk(
  wrk: string,
  url: string,
  pngPath: string,
  dir: string,
  connections: number,
  seconds: number,
) {
  const lua = join(dir, "post_png.lua");
  await writeFile(
    lua,
    [
      `local f = assert(io.open(${JSON.stringify(pngPath)}, "rb"))`,
      `wrk.method = "POST"`,
      `wrk.body = f:read("*all")`,
      `f:close()`,
      `wrk.headers["Content-Type"] = "image/png"`,
    ].join("\n"),
  );
  const out = await new Deno.Command(wrk, {
    args: [
      "-t",
      "2",
      "-c",
      String(connections),
      "-d",
      `${seconds}s`,
      "--timeout",
      "5s",
      "--latency",
      "-s",
      lua,
      `${url}/v1/classify`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  const rps = Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const p50 = text.match(/\s50%\s+(\S+)/)?.[1] ?? "?";
  const p99 = text.match(/\s99%\s+(\S+)/)?.[1] ?? "?";
  const non2xx = Number(text.match(/Non-2xx or 3xx responses:\s+(\d+)/)?.[1] ?? 0);
  const errors = text.match(/Socket errors:.*$/m)?.[0] ?? "";
  return { rps, p50, p99, non2xx, errors, raw: text };
}

async function main(args: string[]): Promise<number> {
  const { flags: f, positional } = parseFlags(args, FLAGS, {});
  if (f.help) {
    console.log(formatHelp(USAGE, FLAGS));
    return 0;
  }
  if (positional.length) throw new FlagError(`Unexpected argument(s): ${positional.join(" ")}`);
  const bundle = (f.bundle as string | undefined) ??
    (await resolveActive(f.registry as string)).dir;
  const test = readTestImages(1);
  const png = encodeGreyPng(test ? imageAt(test, 0) : new Uint8Array(784).fill(128), 28, 28);
  const tmp = await mkdtemp(join(tmpdir(), "bench-serve-"));
  const pngPath = join(tmp, "one.png");
  await writeFile(pngPath, png);
  const rows: string[][] = [];
  try {
    for (const backend of (f.backends as string).split(",")) {
      const server = await startServer([
        "--bundle",
        bundle,
        "--backend",
        backend,
        "--threads",
        String(f.threads),
      ]);
      try {
        const lat = await latency(server.url, png, f.requests as number);
        const w = await runWrk(
          f.wrk as string,
          server.url,
          pngPath,
          tmp,
          f.connections as number,
          f.duration as number,
        );
        rows.push([
          backend,
          lat.p50.toFixed(2),
          lat.p90.toFixed(2),
          lat.p99.toFixed(2),
          w.rps.toFixed(0),
          w.p50,
          w.p99,
          String(w.non2xx) + (w.errors ? ` (${w.errors})` : ""),
        ]);
      } finally {
        await server.stop();
      }
    }
  } finally {
    await rm(tmp, { recursive: true });
  }
  const head = [
    "backend",
    "c1 p50 ms",
    "c1 p90 ms",
    "c1 p99 ms",
    `req/s @${f.connections}`,
    `p50 @${f.connections}`,
    `p99 @${f.connections}`,
    "non-2xx",
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |";
  console.log(
    `POST /v1/classify, one 28x28 PNG (${png.length} bytes), bundle ${bundle}, ${f.threads} thread(s), wrk ${f.duration}s, loopback, ${navigator.hardwareConcurrency} CPUs (shared)`,
  );
  console.log(
    [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)]
      .join("\n"),
  );
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(
      e instanceof FlagError
        ? `${e.message}\n\n${formatHelp(USAGE, FLAGS)}`
        : `bench_serve: ${(e as Error).message}`,
    );
    Deno.exit(2);
  }
}
