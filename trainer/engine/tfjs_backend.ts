/**
 * Chooses and initialises the tfjs backend the trainer runs on. "auto" prefers the native
 * tfjs-node binding (imported dynamically: it is optional and its binary is often missing),
 * then the wasm backend with our fast training kernels (./kernels.ts) and, if asked, wasm
 * threads (./threads.ts), and only then the pure-JS cpu backend, which is orders of magnitude
 * slower than wasm for the VAE (docs/performance.md) and therefore announced loudly. The wasm
 * binaries are read from node_modules, never fetched. `initEngine` is idempotent: later calls
 * return the first result.
 */
import * as tf from "@tensorflow/tfjs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { registerWasmTrainingKernels } from "./kernels.ts";
import { enableWasmThreads, unrefWasmWorkers } from "./threads.ts";

export type EngineBackend = "auto" | "tensorflow" | "wasm" | "cpu";

export interface EngineOptions {
  /** Which backend to use; "auto" tries tensorflow, then wasm, then cpu. */
  backend?: EngineBackend;
  /**
   * wasm threads (XNNPACK's pool). Default 1: on small shared machines a second thread buys
   * little speed and much jitter (docs/performance.md, scripts/bench_train.ts).
   */
  threads?: number;
  log?: (s: string) => void;
}

export interface EngineInfo {
  backend: string;
  threads: number;
  description: string;
}

export const DEFAULT_THREADS = 1;

let current: Promise<EngineInfo> | null = null;
let currentOpts: EngineOptions | null = null;

/** Initialises the backend once; later calls (with any options) return the same result. */
export function initEngine(opts: EngineOptions = {}): Promise<EngineInfo> {
  const log = opts.log ?? ((s: string) => console.log(s));
  if (current != null) {
    if (
      (opts.backend ?? "auto") !== (currentOpts!.backend ?? "auto") ||
      (opts.threads ?? DEFAULT_THREADS) !== (currentOpts!.threads ?? DEFAULT_THREADS)
    ) {
      current.then((info) =>
        log(
          `engine: already initialised as ${info.description}; ignoring new options ${
            JSON.stringify({ backend: opts.backend, threads: opts.threads })
          }`,
        )
      );
    }
    return current;
  }
  currentOpts = { ...opts };
  current = choose(opts, log);
  current.catch(() => {
    // A failed init may be retried with other options.
    current = null;
    currentOpts = null;
  });
  return current;
}

async function choose(opts: EngineOptions, log: (s: string) => void): Promise<EngineInfo> {
  const want = opts.backend ?? "auto";
  const threads = opts.threads ?? DEFAULT_THREADS;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(`engine: threads must be a positive integer, got ${threads}`);
  }
  if (!["auto", "tensorflow", "wasm", "cpu"].includes(want)) {
    throw new Error(`engine: unknown backend "${want}" (auto, tensorflow, wasm, cpu)`);
  }

  const failures: string[] = [];
  if (want === "auto" || want === "tensorflow") {
    try {
      await initTensorflow();
      const info = {
        backend: "tensorflow",
        threads: 0,
        description: "tfjs-node (native TensorFlow)",
      };
      log(`engine: using ${info.description}`);
      return info;
    } catch (e) {
      const why = `tfjs-node unavailable: ${firstLine(e)}`;
      if (want === "tensorflow") throw new Error(`engine: cannot use backend "tensorflow": ${why}`);
      failures.push(why);
    }
  }
  if (want === "auto" || want === "wasm") {
    try {
      const got = await initWasm(threads, log);
      const info = {
        backend: "wasm",
        threads: got,
        description: `tfjs wasm (SIMD, XNNPACK) + fast training kernels, ${got} thread${
          got > 1 ? "s" : ""
        }`,
      };
      log(`engine: using ${info.description}${failures.length ? ` (${failures.join("; ")})` : ""}`);
      return info;
    } catch (e) {
      const why = `wasm unavailable: ${firstLine(e)}`;
      if (want === "wasm") throw new Error(`engine: cannot use backend "wasm": ${why}`);
      failures.push(why);
    }
  }
  if (!(await tf.setBackend("cpu"))) {
    throw new Error("engine: cannot initialise even the tfjs cpu backend");
  }
  await tf.ready();
  const bar = "!".repeat(78);
  log(
    `${bar}\nengine: WARNING: using the pure-JS tfjs cpu backend. Training the VAE this way takes\n` +
      `days per epoch (~250x slower than wasm).${
        failures.length ? ` Reasons: ${failures.join("; ")}.` : ""
      }\n${bar}`,
  );
  return { backend: "cpu", threads: 1, description: "tfjs cpu (pure JS, very slow)" };
}

async function initTensorflow(): Promise<void> {
  // Dynamic and by a variable name so bundlers and type checks never require the package.
  const name = "@tensorflow/tfjs-node";
  await import(name);
  if (!(await tf.setBackend("tensorflow"))) {
    throw new Error("setBackend('tensorflow') returned false");
  }
  await tf.ready();
}

/** Returns the thread count actually running (the runtime may cap it). */
async function initWasm(threads: number, log: (s: string) => void): Promise<number> {
  const wasm = await import("@tensorflow/tfjs-backend-wasm");
  if (tf.getBackend() !== "wasm") {
    // The node bundle would find the .wasm files beside itself anyway; saying so explicitly
    // keeps it working if the package is ever loaded through another entry point.
    const require = createRequire(import.meta.url);
    const dist = path.dirname(require.resolve("@tensorflow/tfjs-backend-wasm"));
    wasm.setWasmPaths(dist + path.sep);
    const restore = threads > 1 ? await enableWasmThreads(threads, log) : () => {};
    registerWasmTrainingKernels();
    try {
      if (!(await tf.setBackend("wasm"))) {
        throw new Error("setBackend('wasm') returned false (see the message logged above)");
      }
    } finally {
      restore();
    }
    if (threads > 1) unrefWasmWorkers();
  }
  registerWasmTrainingKernels();
  await tf.ready();
  return wasm.getThreadsCount();
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String((e as { message?: string })?.message ?? e);
  return msg.split("\n")[0];
}
