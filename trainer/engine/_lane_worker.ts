/**
 * One extra training lane of ort_lanes.ts in a worker thread: builds the same training graph
 * (gradients only) from the same architecture, then for every message takes the current
 * parameters and its share of the batch and answers with the loss parts and the gradient.
 * onnxruntime-node runs a session on the calling JS thread, so a second core needs a thread.
 */
import * as tf from "@tensorflow/tfjs";
import { parentPort, workerData } from "node:worker_threads";
import {
  buildDecoder,
  buildEncoder,
  buildHead,
  type HeadConfig,
  type VaeConfig,
} from "../model.ts";
import { OrtTrainer, type OrtTrainerOptions } from "./ort_train.ts";

export interface LaneInit {
  vae: VaeConfig;
  head: HeadConfig | null;
  opts: OrtTrainerOptions;
}

export interface LaneRequest {
  params: Float32Array;
  x: Float32Array;
  eps: Float32Array;
  labels?: Float32Array;
}

const init = workerData as LaneInit;
const port = parentPort!;
// The models only carry the architecture and initial weights here: no banner about tfjs-node.
tf.enableProdMode();
try {
  const models = {
    encoder: buildEncoder(init.vae),
    decoder: buildDecoder(init.vae),
    head: init.head ? buildHead(init.vae.latent, init.head) : null,
  };
  const lane = await OrtTrainer.create(models, { ...init.opts, adam: "js" });
  port.on("message", async (m: LaneRequest | "close") => {
    if (m === "close") {
      await lane.dispose();
      port.close();
      return;
    }
    try {
      lane.setParamsFlat(m.params);
      const r = await lane.forwardBackward(m.x, m.eps, m.labels);
      port.postMessage({ parts: r.parts, grads: r.grads }, [r.grads.buffer as ArrayBuffer]);
    } catch (e) {
      port.postMessage({ error: (e as Error).message });
    }
  });
  port.postMessage({ ready: true });
} catch (e) {
  port.postMessage({ error: `lane worker cannot start: ${(e as Error).message}` });
}
