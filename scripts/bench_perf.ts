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
 *     [--precisions fp32,int8] [--ceilings-only]
 *
 * Each backend x precision (serving graph) is a runtime of its own, labelled "native" (fp32) or
 * "native-int8", with its own service, baseline and ceiling; the int8/fp32 ratios are printed
 * below the table. --ceilings-only measures the ceilings alone (no servers, no wrk).
 *
 * Internal roles (used by the script on itself): --role ceiling|hello|baseline, with
 * --backend and --precision.
 *
 * This file parses the flags and dispatches; the parts live in scripts/bench_perf/: driver.ts
 * (servers, rounds), roles.ts (the processes above), metrics.ts (batching from /metrics),
 * rounds.ts (combining rounds), report.ts (the printed report) and targets.ts (the targets, as
 * a table); wrk is run and parsed by scripts/_wrk.ts, CPU and load read by scripts/_proc.ts.
 */
import type { Precision } from "../bundle/mod.ts";
import { formatHelp, parseCommandFlags } from "../common/flags.ts";
import { BUNDLE_FLAGS } from "./_cli.ts";
import { type BenchOptions, runBench } from "./bench_perf/driver.ts";
import { roleBaseline, roleCeiling, roleHello, type RoleOptions } from "./bench_perf/roles.ts";

const FLAGS = {
  ...BUNDLE_FLAGS,
  bundle: {
    ...BUNDLE_FLAGS.bundle,
    help: "bundle dir (default: the registry's active model, else tests/testdata/tiny-bundle)",
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

type Flags = Record<string, string | number | boolean | undefined>;

/** The driver's options from the parsed flags; throws on a bad --replicas or --precisions list. */
function benchOptions(f: Flags): BenchOptions {
  const replicas = (f.replicas as string).split(",").map(Number);
  if (replicas.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`--replicas takes positive integers, got ${f.replicas}`);
  }
  const precisions = f.precisions === "auto"
    ? "auto"
    : (f.precisions as string).split(",").filter(Boolean) as Precision[];
  if (precisions !== "auto" && !precisions.every((p) => p === "fp32" || p === "int8")) {
    throw new Error(`--precisions takes auto or a list of fp32 and int8, got ${f.precisions}`);
  }
  return {
    bundle: f.bundle as string | undefined,
    registry: f.registry as string,
    duration: f.duration as number,
    rounds: Math.max(1, f.rounds as number),
    connections: f.connections as number,
    backends: (f.backends as string).split(",").filter(Boolean),
    precisions,
    workers: f.workers as number,
    threads: f.threads as number,
    replicas,
    maxQueueDelayMs: f["max-queue-delay-ms"] as number,
    pipelineDepth: f["pipeline-depth"] as number,
    baselineThreads: f["baseline-threads"] as number,
    ceilingThreads: f["ceiling-threads"] as number,
    ceilingsOnly: f["ceilings-only"] as boolean,
    png: f.png as boolean,
    wrk: f.wrk as string,
  };
}

function roleOptions(f: Flags): RoleOptions {
  return {
    bundle: f.bundle as string,
    backend: f.backend as "native" | "wasm",
    precision: f.precision as Precision,
    threads: f.threads as number,
    port: f.port as number,
    seconds: f.seconds as number,
  };
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
    await roleCeiling(roleOptions(f));
    Deno.exit(0);
  } else if (role === "hello") {
    roleHello(roleOptions(f));
  } else if (role === "baseline") {
    if (!f.threads) f.threads = 2;
    await roleBaseline(roleOptions(f));
  } else {
    try {
      Deno.exit(await runBench(benchOptions(f)));
    } catch (e) {
      console.error(`bench_perf: ${(e as Error).message}`);
      Deno.exit(1);
    }
  }
}
