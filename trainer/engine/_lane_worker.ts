/**
 * One extra training lane of ort_lanes.ts in a worker thread: builds the same training graph
 * (gradients only) from the same architecture, then answers two requests: "grads" (read the
 * shared parameters, compute the loss parts and the gradient of its share of the batch, write
 * the gradient into its shared slot) and "adam" (apply the averaged Adam update to its range of
 * the shared parameters and slots). onnxruntime-node runs a session on the calling JS thread,
 * so a second core needs a thread.
 */
import * as tf from "@tensorflow/tfjs";
import { parentPort, workerData } from "node:worker_threads";
import {
  buildDecoder,
  buildEncoder,
  buildHead,
  type HeadConfig,
  headInputWidth,
  type VaeConfig,
} from "../model.ts";
import { type AdamStep, adamUpdateMean } from "./ort_adam.ts";
import { OrtTrainer, type OrtTrainerOptions } from "./ort_train.ts";

/** The state every lane reads and writes: views of SharedArrayBuffers, flat ONNX layout. */
export interface LaneShared {
  p: Float32Array;
  m: Float32Array;
  v: Float32Array;
  /** One gradient per lane, in lane order (lane 0 is the main thread). */
  grads: Float32Array[];
}

export interface LaneInit {
  vae: VaeConfig;
  head: HeadConfig | null;
  opts: OrtTrainerOptions;
  shared: LaneShared;
  /** This lane's index (1.. ; 0 is the main thread). */
  lane: number;
}

export type LaneRequest =
  | { kind: "grads"; x: Float32Array; eps: Float32Array; labels?: Float32Array }
  | { kind: "adam"; step: AdamStep; from: number; to: number };

const init = workerData as LaneInit;
const port = parentPort!;
// The models only carry the architecture and initial weights here: no banner about tfjs-node.
tf.enableProdMode();
try {
  const models = {
    encoder: buildEncoder(init.vae),
    decoder: buildDecoder(init.vae),
    head: init.head ? buildHead(headInputWidth(init.vae, init.head), init.head) : null,
  };
  const lane = await OrtTrainer.create(models, { ...init.opts, adam: "js" });
  const { shared } = init;
  port.on("message", async (m: LaneRequest | "close") => {
    if (m === "close") {
      await lane.dispose();
      port.close();
      return;
    }
    try {
      if (m.kind === "adam") {
        adamUpdateMean(shared.p, shared.m, shared.v, shared.grads, m.step, m.from, m.to);
        port.postMessage({ done: true });
        return;
      }
      // onnxruntime-node refuses SharedArrayBuffer-backed tensors, hence the copies.
      lane.setParamsFlat(shared.p);
      const r = await lane.forwardBackward(m.x, m.eps, m.labels);
      shared.grads[init.lane].set(r.grads);
      port.postMessage({ parts: r.parts });
    } catch (e) {
      port.postMessage({ error: (e as Error).message });
    }
  });
  port.postMessage({ ready: true });
} catch (e) {
  port.postMessage({ error: `lane worker cannot start: ${(e as Error).message}` });
}
