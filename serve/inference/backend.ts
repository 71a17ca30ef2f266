/**
 * The only file that imports onnxruntime. It hides the two runtimes (onnxruntime-node, a
 * Node-API addon, "native"; onnxruntime-web's WebAssembly build, "wasm") behind one small
 * async interface that takes and returns plain typed arrays, so callers never see an ORT
 * Tensor and the same interface can later be implemented by a Worker proxy. Choosing "auto"
 * prefers native and falls back to wasm, and says why.
 */
import type { SessionValueMetadata } from "../../common/bundle.ts";

export type BackendName = "native" | "wasm";
export type BackendChoice = BackendName | "auto";

/** A float32 tensor as plain data: what crosses the backend boundary (and could cross a Worker's). */
export interface TensorData {
  data: Float32Array;
  dims: number[];
}

/**
 * One loaded ONNX graph. Callers go through runner.ts, which never overlaps run() calls: the
 * wasm build has one heap and is not re-entrant, and native gains more from batching anyway.
 */
export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly SessionValueMetadata[];
  readonly outputMetadata?: readonly SessionValueMetadata[];
  run(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>>;
  release(): Promise<void>;
}

export interface Backend {
  readonly name: BackendName;
  createSession(model: Uint8Array): Promise<Session>;
}

export interface BackendOptions {
  /** Intra-op threads (native) / wasm worker threads. */
  threads: number;
}

// deno-lint-ignore no-explicit-any
type Ort = any;

function wrap(ort: Ort, session: Ort): Session {
  return {
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

let wasmThreads: number | null = null;

async function loadWasm(opts: BackendOptions): Promise<Backend> {
  const ort = await import("onnxruntime-web");
  // numThreads is global to the wasm module and must be set before the first session;
  // left unset, the runtime probes for threads in a way that stalls under Deno.
  if (wasmThreads === null) {
    wasmThreads = Math.max(1, opts.threads);
    ort.env.wasm.numThreads = wasmThreads;
  }
  ort.env.logLevel = "error";
  return {
    name: "wasm",
    async createSession(model) {
      const s = await ort.InferenceSession.create(model, {
        executionProviders: ["wasm"],
        graphOptimizationLevel: "all",
      });
      return wrap(ort, s);
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
  return {
    name: "native",
    async createSession(model) {
      const s = await ort.InferenceSession.create(model, {
        executionProviders: ["cpu"],
        graphOptimizationLevel: "all",
        intraOpNumThreads: Math.max(1, opts.threads),
        interOpNumThreads: 1,
      });
      return wrap(ort, s);
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
  if (choice === "wasm") {
    return { backend: await loadWasm(opts), note: "wasm (onnxruntime-web), as requested" };
  }
  if (choice === "native") {
    return { backend: await loadNative(opts), note: "native (onnxruntime-node), as requested" };
  }
  try {
    return {
      backend: await loadNative(opts),
      note: "native (onnxruntime-node), chosen by --backend auto",
    };
  } catch (e) {
    const reason = (e as Error).message.split("\n")[0];
    return {
      backend: await loadWasm(opts),
      note: `wasm (onnxruntime-web): native unavailable (${reason})`,
    };
  }
}
