/**
 * Tests of bundle_parity.ts and bundle_serving.ts on untrained TINY models and 300 real test
 * images: the exported graphs agree with the tfjs models they came from, and a graph from other
 * weights (encoder, head or decoder) or of another shape is caught.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { before, test } from "node:test";
import type { WriteBundleOptions } from "./bundle.ts";
import { exportParity, PARITY_IMAGES } from "./bundle_parity.ts";
import { runExported, type ServedOutputs } from "./bundle_serving.ts";
import { loadFashionMnist, type Split, take } from "./data.ts";
import { exportDecoder, exportServingModel, SERVING_IO } from "./export/onnx.ts";
import {
  buildDecoder,
  buildEncoder,
  buildHead,
  type HeadConfig,
  TINY_VAE,
  vaeConfig,
} from "./model.ts";

const HEAD: HeadConfig = { kind: "mlp", hidden: [8], dropout: 0, seed: 7 };
const K = 10, L = TINY_VAE.latent;
let test300: Split;
let served: ServedOutputs;

function options(seed: number, head: HeadConfig = HEAD): WriteBundleOptions {
  const vae = vaeConfig({ seed }, TINY_VAE);
  return {
    name: "parity-test",
    encoder: buildEncoder(vae),
    decoder: buildDecoder(vae),
    head: buildHead(L, { ...head, seed: head.seed + seed }),
    vaeConfig: vae,
    headConfig: head,
    training: {},
    test: test300,
  };
}

let a: WriteBundleOptions;

before(async () => {
  await tf.setBackend("cpu");
  test300 = take(loadFashionMnist().test, Array.from({ length: 300 }, (_, i) => i));
  a = options(1);
  const model = exportServingModel(a.encoder, a.head, L);
  served = (await runExported(model, test300, [0, 5])).served;
});

test("runExported() answers for every image of the split and the probe rows", async () => {
  assert.equal(served.probabilities.length, 300 * K);
  assert.equal(served.mu.length, 300 * L);
  assert.equal(served.logvar.length, 300 * L);
  for (let i = 0; i < 300; i += 37) {
    const sum = served.probabilities.subarray(i * K, (i + 1) * K).reduce((s, p) => s + p, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `image ${i}: probabilities sum to ${sum}`);
  }
  const model = exportServingModel(a.encoder, a.head, L);
  const { probe } = await runExported(model, test300, [0, 5]);
  const probeMu = probe[SERVING_IO.mu].data as Float32Array;
  // Probe row 5 run alone must answer as it did within the whole split (float error only).
  probeMu.subarray(L, 2 * L).forEach((v, j) =>
    assert.ok(Math.abs(v - served.mu[5 * L + j]) < 1e-6, `probe mu ${j}: ${v}`)
  );
});

test("exportParity() of the models' own export is within float error on PARITY_IMAGES images", async () => {
  const decoder = exportDecoder(a.decoder!, L);
  const p = await exportParity(a, decoder, served, test300, K);
  assert.equal(p.images, PARITY_IMAGES);
  assert.ok(p.maxAbsDiff <= 1e-5, `max |ort - tfjs| ${p.maxAbsDiff}`);
  const few = take(test300, [0, 1, 2]);
  assert.equal((await exportParity(a, decoder, served, few, K)).images, 3);
});

test("exportParity() catches an encoder, head or decoder with other weights", async () => {
  const b = options(2);
  const other = await exportParity(b, null, served, test300, K);
  assert.ok(other.maxAbsDiff > 1e-3, `other encoder and head: ${other.maxAbsDiff}`);
  const wrongDecoder = exportDecoder(b.decoder!, L);
  const dec = await exportParity(a, wrongDecoder, served, test300, K);
  assert.ok(dec.maxAbsDiff > 1e-3, `other decoder: ${dec.maxAbsDiff}`);
});

test("exportParity() refuses outputs of another shape, naming the output", async () => {
  const three = options(1, { ...HEAD, classes: 3 });
  await assert.rejects(
    exportParity(three, null, served, test300, K),
    /Export parity: probabilities has 2560 values in onnxruntime, 768 in tfjs/,
  );
});
