/**
 * Service benchmark, per backend: starts serve/main.ts on a free loopback port, measures the
 * latency of one 28x28 PNG through POST /v1/classify at concurrency 1 (p50/p90/p99 over
 * sequential fetches after a warm-up), then the throughput at 32 connections with wrk for a
 * bounded time, and prints one table. Loopback only; each server is stopped before the next.
 *
 *   npx deno run -A scripts/bench_serve.ts --bundle tests/testdata/tiny-bundle [--duration 10]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCommandFlags } from "../common/flags.ts";
import { encodeGreyPng } from "../common/image_codec.ts";
import {
  type ServerProcess,
  startServer as startServerProcess,
} from "../testkit/server_process.ts";
import { imageAt, readTestImages } from "../testkit/test_images.ts";
import { BUNDLE_FLAGS, bundleDir, runScript } from "./_cli.ts";
import { markdownTable } from "./_table.ts";
import { runWrk, wrkPostScript } from "./_wrk.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";

const FLAGS = {
  ...BUNDLE_FLAGS,
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

/** serve/main.ts on a free loopback port; fails if it started without a model. */
async function startServer(args: string[]): Promise<ServerProcess> {
  const server = await startServerProcess(args, { startTimeoutMs: 60_000 });
  if (!server.log.some((l) => l.startsWith("Model "))) {
    await server.stop();
    throw new Error(`server started without a model:\n${server.log.join("\n")}`);
  }
  return server;
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

async function main(args: string[]): Promise<number> {
  const f = parseCommandFlags(args, FLAGS, USAGE, {});
  if (!f) return 0;
  const bundle = await bundleDir(f.bundle as string | undefined, f.registry as string);
  const test = readTestImages(1);
  const png = encodeGreyPng(
    test ? imageAt(test, 0) : new Uint8Array(PIXELS).fill(128),
    IMAGE_SIZE,
    IMAGE_SIZE,
  );
  const tmp = await mkdtemp(join(tmpdir(), "bench-serve-"));
  const script = await wrkPostScript(tmp, "png", png, "image/png");
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
        const w = await runWrk({
          wrk: f.wrk as string,
          url: `${server.url}/v1/classify`,
          pids: [server.pid],
          connections: f.connections as number,
          script,
          seconds: f.duration as number,
        });
        rows.push([
          backend,
          lat.p50.toFixed(2),
          lat.p90.toFixed(2),
          lat.p99.toFixed(2),
          w.rps.toFixed(0),
          w.p50.toFixed(2),
          w.p99.toFixed(2),
          w.errors || "none",
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
    `p50 ms @${f.connections}`,
    `p99 ms @${f.connections}`,
    "errors",
  ];
  console.log(
    `POST /v1/classify, one 28x28 PNG (${png.length} bytes), bundle ${bundle}, ${f.threads} thread(s), wrk ${f.duration}s, loopback, ${navigator.hardwareConcurrency} CPUs (shared)`,
  );
  console.log(markdownTable(head, rows));
  return 0;
}

if (import.meta.main) await runScript("bench_serve", USAGE, FLAGS, main);
