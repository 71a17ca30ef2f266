/**
 * The only file that imports onnxruntime. It hides the two runtimes (onnxruntime-node, a
 * Node-API addon, "native"; onnxruntime-web's WebAssembly build, "wasm") behind one small
 * async interface that takes and returns plain typed arrays, so callers never see an ORT
 * Tensor and the same interface can later be implemented by a Worker proxy. Choosing "auto"
 * prefers native and falls back to wasm, and says why.
 */
import type { SessionValueMetadata } from "../../bundle/mod.ts";

export type BackendName = "native" | "wasm";
export type BackendChoice = BackendName | "auto";

/** A float32 tensor as plain data: what crosses the backend boundary (and could cross a Worker's). */
export interface TensorData {
  data: Float32Array;
  dims: number[];
}

/**
 * One loaded ONNX graph. Callers go through runner.ts, which overlaps at most `concurrency`
 * run() calls (default 1): the wasm build has one heap and is not re-entrant, so a session
 * that accepts more is a pool with one copy per worker (worker.ts), each run on its own copy.
 */
export interface Session {
  /** How many run() calls may be in flight at once (a worker pool's size); default 1. */
  readonly concurrency?: number;
  /**
   * True when run() computes on this thread (an in-process session): the thread can read no
   * request while it runs, so the runner gathers what arrived in the same event-loop turn
   * before it starts one (runner.ts).
   */
  readonly inline?: boolean;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly SessionValueMetadata[];
  readonly outputMetadata?: readonly SessionValueMetadata[];
  run(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>>;
  release(): Promise<void>;
}

/**
 * Seconds a run spent computing, for results whose run() wall time includes more (a worker's
 * round trip and the batches queued ahead in it): keyed by the outputs object run() returned.
 */
export const computeSeconds = new WeakMap<object, number>();

export interface Backend {
  readonly name: BackendName;
  createSession(model: Uint8Array): Promise<Session>;
  /**
   * When present, loadModel() asks for a private backend per model and disposes it once the
   * model's sessions are released (worker.ts: one Deno Worker per model, so retiring a model
   * returns its WebAssembly memory).
   */
  isolate?(): Promise<IsolatedBackend>;
}

/** A backend owned by one model; dispose() frees what the sessions could not (a worker). */
export interface IsolatedBackend extends Backend {
  dispose(): Promise<void>;
}

export interface BackendOptions {
  /** Intra-op threads (native) / wasm worker threads, per session. */
  threads: number;
  /**
   * Session workers per loaded model (worker.ts): each holds a copy of the model's sessions and
   * runs one batch at a time, so up to `workers` batches run in parallel off the main thread.
   * Undefined: one (tests, scripts); 0: auto (one per core). Applies to wasm; native sessions
   * run in-process (see loadBackend) unless `isolate` is true.
   */
  workers?: number;
  /** Batches in flight per session worker (worker.ts; default 2: one runs, one waits). */
  depth?: number;
  /**
   * Run each model's sessions in a Deno Worker of its own (worker.ts). Defaults to true for
   * wasm, whose memory only comes back when its worker ends, and false for native, whose
   * session.release() does return memory (scripts/bench_swap_memory.ts measures both).
   */
  isolate?: boolean;
}

// deno-lint-ignore no-explicit-any
type Ort = any;

function wrap(ort: Ort, session: Ort): Session {
  return {
    inline: true,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
    async run(feeds) {
      const ortFeeds: Record<string, unknown> = {};
      for (const [name, t] of Object.entries(feeds)) {
        ortFeeds[name] = new ort.Tensor("float32", t.data, t.dims);
      }
      const out = await session.run(ortFeeds);
      const result: Record<string, TensorData> = {};
      for (const name of Object.keys(out)) {
        const t = out[name];
        if (t.type !== "float32") {
          throw new Error(`output "${name}" has dtype ${t.type}, expected float32`);
        }
        // Copy out of the runtime's memory: wasm outputs may alias its heap, which the next run reuses.
        result[name] = {
          data: new Float32Array(t.data as Float32Array),
          dims: Array.from(t.dims as number[]),
        };
        t.dispose?.();
      }
      return result;
    },
    async release() {
      await session.release();
    },
  };
}

/**
 * How each runtime is set up: which package, the wasm thread count, the session options. One
 * definition, used here and sent to session workers (worker.ts), which load the same package.
 */
export function runtimeSetup(name: BackendName, threads: number) {
  const t = Math.max(1, threads);
  return name === "wasm"
    ? {
      module: "onnxruntime-web",
      wasmNumThreads: t,
      sessionOptions: { executionProviders: ["wasm"], graphOptimizationLevel: "all" },
    }
    : {
      module: "onnxruntime-node",
      wasmNumThreads: undefined,
      sessionOptions: {
        executionProviders: ["cpu"],
        graphOptimizationLevel: "all",
        intraOpNumThreads: t,
        interOpNumThreads: 1,
        // ORT's intra-op threads spin after each run by default; on a small shared machine
        // that spinning takes the cores the HTTP thread and the other workers need.
        extra: { session: { intra_op: { allow_spinning: "0" } } },
      },
    };
}

let wasmThreads: number | null = null;

async function loadWasm(opts: BackendOptions): Promise<Backend> {
  const ort = await import("onnxruntime-web");
  const setup = runtimeSetup("wasm", opts.threads);
  // numThreads is global to the wasm module and must be set before the first session;
  // left unset, the runtime probes for threads in a way that stalls under Deno.
  if (wasmThreads === null) {
    wasmThreads = setup.wasmNumThreads!;
    ort.env.wasm.numThreads = wasmThreads;
  }
  ort.env.logLevel = "error";
  return {
    name: "wasm",
    async createSession(model) {
      return wrap(ort, await ort.InferenceSession.create(model, setup.sessionOptions as Ort));
    },
  };
}

async function loadNative(opts: BackendOptions): Promise<Backend> {
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (
    g.Deno?.permissions?.querySync &&
    g.Deno.permissions.querySync({ name: "ffi" }).state !== "granted"
  ) {
    throw new Error(
      "onnxruntime-node is a Node-API addon and Deno needs --allow-ffi (and --allow-sys) to load it",
    );
  }
  const ort = await import("onnxruntime-node");
  ort.env.logLevel = "error";
  const setup = runtimeSetup("native", opts.threads);
  return {
    name: "native",
    async createSession(model) {
      return wrap(ort, await ort.InferenceSession.create(model, setup.sessionOptions as Ort));
    },
  };
}

/**
 * Loads the requested runtime. "auto" tries native and falls back to wasm; `note` says which
 * was chosen and, on fallback, why native was not used.
 */
export async function loadBackend(
  choice: BackendChoice,
  opts: BackendOptions,
): Promise<{ backend: Backend; note: string }> {
  // 0 = auto. wasm: a worker per core (its memory only comes back when a worker ends), each
  // with cores/workers threads. native: in-process with every core, because a worker round trip
  // costs more than a small model's inference (docs/performance.md), and see isolateNative below.
  const cores = (globalThis.navigator?.hardwareConcurrency as number | undefined) || 1;
  const workers = opts.workers === undefined ? 1 : Math.max(1, opts.workers || cores);
  const poolThreads = opts.threads || Math.max(1, Math.floor(cores / workers));
  opts = { ...opts, threads: opts.threads || cores };
  const inWorkers = async (name: BackendName, note: string) => {
    const { WorkerBackend } = await import("./worker.ts");
    const backend = new WorkerBackend(name, { threads: poolThreads, workers, depth: opts.depth });
    await backend.start();
    const pool = workers === 1 ? "one worker" : `a pool of ${workers} workers`;
    return {
      backend,
      note:
        `${note}; ${pool} per loaded model, ${poolThreads} thread(s) each, ${backend.depth} batch(es) in flight per worker`,
    };
  };
  // Workers as used here are Deno's; elsewhere (Node scripts) sessions stay in-process.
  const canIsolate = "Deno" in globalThis;
  const isolateWasm = canIsolate && (opts.isolate ?? true);
  // Native sessions stay on this thread unless a caller insists (isolate: true): onnxruntime-node
  // keeps process-global state, and its addon loaded in several Workers can crash the process at
  // exit (how often: docs/performance.md).
  const isolateNative = canIsolate && (opts.isolate ?? false);
  if (choice === "wasm") {
    const note = "wasm (onnxruntime-web), as requested";
    return isolateWasm
      ? await inWorkers("wasm", note)
      : { backend: await loadWasm(opts), note: `${note}, ${opts.threads} thread(s)` };
  }
  if (choice === "native") {
    const note = `native (onnxruntime-node), as requested`;
    const backend = await loadNative(opts); // checks permissions and the addon in this thread
    return isolateNative
      ? await inWorkers("native", note)
      : { backend, note: `${note}, in-process, ${opts.threads} thread(s)` };
  }
  try {
    const backend = await loadNative(opts);
    const note = "native (onnxruntime-node), chosen by --backend auto";
    return isolateNative
      ? await inWorkers("native", note)
      : { backend, note: `${note}, in-process, ${opts.threads} thread(s)` };
  } catch (e) {
    const reason = (e as Error).message.split("\n")[0];
    const note = `wasm (onnxruntime-web): native unavailable (${reason})`;
    return isolateWasm ? await inWorkers("wasm", note) : { backend: await loadWasm(opts), note };
  }
}
