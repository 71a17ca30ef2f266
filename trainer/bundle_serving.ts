/**
 * model.onnx run by onnxruntime-node, a step of writeBundle (bundle.ts): on the whole
 * evaluation split for the metrics and the latent map, and on the probe rows for the probe the
 * server reruns at load; so metrics and probes describe the file that will be served.
 */
import * as ort from "onnxruntime-node";
import { argmax } from "../common/argmax.ts";
import { encodeProbePixels, encodeSet, type ProbeCase } from "../bundle/mod.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { SERVING_IO } from "./export/onnx.ts";
import type { LabelledImages } from "./bundle.ts";
import { graphOfSession } from "./ort_node.ts";

/** What model.onnx answered on the evaluation split: flat [n*K] probabilities, [n*L] moments. */
export interface ServedOutputs {
  probabilities: Float32Array;
  mu: Float32Array;
  logvar: Float32Array;
}

/**
 * model.onnx run by onnxruntime-node (the server's runtime family) on the whole split and on the
 * probe rows: metrics and probes describe the file that will be served.
 */
export async function runExported(
  modelBytes: Uint8Array,
  testSet: LabelledImages,
  rows: number[],
): Promise<{ served: ServedOutputs; probe: Record<string, ort.Tensor> }> {
  const session = await ort.InferenceSession.create(modelBytes);
  const probeX = new Float32Array(rows.length * PIXELS);
  rows.forEach((r, i) =>
    normalizePixels(
      testSet.images.subarray(r * PIXELS, (r + 1) * PIXELS),
      probeX.subarray(i * PIXELS, (i + 1) * PIXELS),
    )
  );
  try {
    const served = await encodeSet(
      graphOfSession(session),
      SERVING_IO,
      testSet.images,
      testSet.count,
    );
    const probe = await session.run({
      [SERVING_IO.input]: new ort.Tensor("float32", probeX, [
        rows.length,
        1,
        IMAGE_SIZE,
        IMAGE_SIZE,
      ]),
    });
    return { served, probe };
  } finally {
    await session.release();
  }
}

/** The probe cases: each probe row's pixels with what model.onnx answered for it. */
export function probeCases(
  testSet: LabelledImages,
  rows: number[],
  probe: Record<string, ort.Tensor>,
  K: number,
  L: number,
): ProbeCase[] {
  const probeProb = probe[SERVING_IO.probabilities].data as Float32Array;
  const probeMu = probe[SERVING_IO.mu].data as Float32Array;
  return rows.map((r, i) => ({
    pixels: encodeProbePixels(testSet.images.subarray(r * PIXELS, (r + 1) * PIXELS)),
    index: argmax(probeProb, i * K, K),
    probabilities: Array.from(probeProb.subarray(i * K, (i + 1) * K)),
    mu: Array.from(probeMu.subarray(i * L, (i + 1) * L)),
  }));
}
