/**
 * onnxruntime-node behind the bundle contract's Graph interface (bundle/accept.ts): plain typed
 * arrays in and out, so the trainer's checks and set runs (bundle/encode_set.ts) are the same
 * code as the server's.
 */
import * as ort from "onnxruntime-node";
import type { Graph, GraphRuntime, GraphTensor } from "../bundle/mod.ts";

/** An open onnxruntime-node session as a Graph; release() releases the session. */
export function graphOfSession(s: ort.InferenceSession): Graph {
  return {
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    inputMetadata: s.inputMetadata,
    outputMetadata: s.outputMetadata,
    run: async (feeds) => {
      const input: Record<string, ort.Tensor> = {};
      for (const [k, t] of Object.entries(feeds)) {
        input[k] = new ort.Tensor("float32", t.data, t.dims);
      }
      const r = await s.run(input);
      const out: Record<string, GraphTensor> = {};
      for (const [k, t] of Object.entries(r)) {
        out[k] = { data: t.data as Float32Array, dims: t.dims as number[] };
      }
      return out;
    },
    release: () => s.release(),
  };
}

/**
 * onnxruntime-node as a GraphRuntime (the acceptance check's, the gate's, calibration's);
 * `threads` per session, 0 for onnxruntime's default (one per core).
 */
export function nodeGraphRuntime(threads = 1): GraphRuntime<Graph> {
  ort.env.logLevel = "error";
  return {
    name: "onnxruntime-node",
    open: async (bytes) =>
      graphOfSession(await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads })),
  };
}
