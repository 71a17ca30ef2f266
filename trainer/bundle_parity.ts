/**
 * Export parity, a step of writeBundle (bundle.ts): the exported graphs must reproduce the tfjs
 * models they came from on the first PARITY_IMAGES evaluation images (probabilities, mu, logvar
 * and the decoder's pixels) before anything is written, so a wrong export never ships.
 */
import type * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { DECODER_IO } from "./export/onnx.ts";
import type { LabelledImages, WriteBundleOptions } from "./bundle.ts";
import type { ServedOutputs } from "./bundle_serving.ts";

/** Images on which the exported graphs are compared with the tfjs models before writing. */
export const PARITY_IMAGES = 256;

/**
 * tfjs outputs of the source models on the given images; used to confirm the exported files
 * reproduce them before anything is written.
 */
async function tfjsOutputs(opts: WriteBundleOptions, x: Float32Array, n: number) {
  const tfjs = await import("@tensorflow/tfjs");
  const { encodeParts, headLogits } = await import("./model.ts");
  const L = opts.vaeConfig.latent;
  const t = tfjs.tidy(() => {
    const input = tfjs.tensor4d(x, [n, IMAGE_SIZE, IMAGE_SIZE, 1]);
    const { hidden, moments } = encodeParts(opts.encoder, input);
    const mu = moments.slice([0, 0], [n, L]);
    return {
      mu,
      logvar: moments.slice([0, L], [n, L]),
      probabilities: tfjs.softmax(headLogits(opts.head, opts.headConfig.input, { hidden, mu })),
      pixels: opts.decoder ? tfjs.sigmoid(opts.decoder.predict(mu) as tf.Tensor) : tfjs.zeros([0]),
    };
  });
  const data = (v: tf.Tensor) => v.dataSync() as Float32Array;
  const out = {
    mu: data(t.mu),
    logvar: data(t.logvar),
    probabilities: data(t.probabilities),
    pixels: opts.decoder ? data(t.pixels) : null,
  };
  tfjs.dispose(Object.values(t));
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array, what: string): number {
  if (a.length !== b.length) {
    throw new Error(
      `Export parity: ${what} has ${a.length} values in onnxruntime, ${b.length} in tfjs`,
    );
  }
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * The largest |onnxruntime - tfjs| on the first PARITY_IMAGES images of `test`: model.onnx's
 * outputs (`served`) against the tfjs encoder and head, and decoder.onnx (when exported) run on
 * the tfjs mu against the tfjs decoder.
 */
export async function exportParity(
  opts: WriteBundleOptions,
  decoderBytes: Uint8Array | null,
  served: ServedOutputs,
  test: LabelledImages,
  K: number,
): Promise<{ maxAbsDiff: number; images: number }> {
  const L = opts.vaeConfig.latent;
  const pn = Math.min(PARITY_IMAGES, test.count);
  const ref = await tfjsOutputs(opts, normalizePixels(test.images.subarray(0, pn * PIXELS)), pn);
  let parity = Math.max(
    maxAbsDiff(served.probabilities.subarray(0, pn * K), ref.probabilities, "probabilities"),
    maxAbsDiff(served.mu.subarray(0, pn * L), ref.mu, "mu"),
    maxAbsDiff(served.logvar.subarray(0, pn * L), ref.logvar, "logvar"),
  );
  if (decoderBytes && ref.pixels) {
    const dec = await ort.InferenceSession.create(decoderBytes);
    try {
      const out = await dec.run({ [DECODER_IO.input]: new ort.Tensor("float32", ref.mu, [pn, L]) });
      parity = Math.max(
        parity,
        maxAbsDiff(out[DECODER_IO.output].data as Float32Array, ref.pixels, "pixels"),
      );
    } finally {
      await dec.release();
    }
  }
  return { maxAbsDiff: parity, images: pn };
}
