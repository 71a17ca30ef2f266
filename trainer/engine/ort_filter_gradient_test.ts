/**
 * The two filter-gradient forms of the training graph (ort_graph/backward.ts): one GEMM per
 * kernel tap must give the dilated Conv's gradients for every parameter and the same losses
 * over several Adam steps (float32 summation order apart), with strides 1 and 2 and the
 * asymmetric "same" pads of kernel 5; "auto" takes the per-tap form only for wide layers.
 * Tiny configs, real Fashion-MNIST images.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { before, test } from "node:test";
import pkg from "onnx-proto";
import { PIXELS } from "../../common/labels.ts";
import { normalizePixels } from "../../common/preprocess.ts";
import { loadFashionMnist, stratifiedSubset } from "../data.ts";
import {
  buildDecoder,
  buildEncoder,
  buildHead,
  type HeadConfig,
  TINY_VAE,
  type VaeConfig,
} from "../model.ts";
import { buildTrainingGraph, type FilterGradient } from "./ort_graph/mod.ts";
import { OrtTrainer } from "./ort_train.ts";
import { relErr } from "./testdata/compare.ts";

const { onnx } = pkg;
const B = 16;
const HEAD: HeadConfig = { kind: "mlp", hidden: [16, 8], dropout: 0, seed: 7 };
const batch = stratifiedSubset(loadFashionMnist().train, 3 * B, 11);

before(async () => {
  await tf.setBackend("cpu");
  await tf.ready();
});

const models = (vae = TINY_VAE) => ({
  encoder: buildEncoder(vae),
  decoder: buildDecoder(vae),
  head: buildHead(vae.latent, HEAD),
});

function inputs(s: number, latent: number) {
  const x = normalizePixels(batch.images.subarray(s * B * PIXELS, (s + 1) * B * PIXELS));
  const y = Float32Array.from(batch.labels.subarray(s * B, (s + 1) * B));
  const eps = tf.tidy(() =>
    tf.randomNormal([B, latent], 0, 1, "float32", 20 + s).dataSync() as Float32Array
  );
  return { x, y, eps };
}

const trainer = (filterGradient: FilterGradient, vae = TINY_VAE) =>
  OrtTrainer.create(models(vae), {
    latent: vae.latent,
    batchSize: B,
    learningRate: 1e-3,
    classWeight: 5,
    filterGradient,
  });

for (const kernel of [3, 5]) {
  test(`per-tap filter gradients equal the dilated Conv's (kernel ${kernel})`, async () => {
    const vae = { ...TINY_VAE, kernel };
    const [a, b] = [await trainer("dilated", vae), await trainer("per-tap", vae)];
    try {
      const { x, y, eps } = inputs(0, vae.latent);
      const ga = await a.gradientsTfjs(x, eps, y), gb = await b.gradientsTfjs(x, eps, y);
      assert.equal(ga.grads.length, gb.grads.length);
      ga.grads.forEach((g, i) => {
        assert.ok(g.some((v) => v !== 0), `gradient ${i} is all zero`);
        const e = relErr(gb.grads[i], g);
        assert.ok(e < 1e-5, `gradient ${i} (${a.graph.slots[i].layer.name}): relative error ${e}`);
      });
      assert.equal(gb.parts.loss, ga.parts.loss);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
}

test("per-tap and dilated filter gradients give the same losses over 3 Adam steps", async () => {
  const [a, b] = [await trainer("dilated"), await trainer("per-tap")];
  try {
    const losses: number[][] = [[], []];
    for (let s = 0; s < 3; s++) {
      const { x, y, eps } = inputs(s, TINY_VAE.latent);
      losses[0].push((await a.step(x, eps, y)).loss);
      losses[1].push((await b.step(x, eps, y)).loss);
    }
    losses[0].forEach((l, s) =>
      assert.ok(
        Math.abs(losses[1][s] - l) <= 1e-5 * Math.abs(l),
        `step ${s}: ${losses[1][s]} vs ${l}`,
      )
    );
    assert.notEqual(losses[0][2], losses[0][0], "the steps changed the loss");
    assert.ok(relErr(b.paramsFlat, a.paramsFlat) < 1e-4, "weights after 3 steps");
  } finally {
    await a.dispose();
    await b.dispose();
  }
});

test('"auto" takes the per-tap form exactly for layers with 16 or more channels', () => {
  const tapGemms = (vae: VaeConfig) => {
    const g = buildTrainingGraph({ ...models(vae), latent: vae.latent, batch: 4 });
    return onnx.ModelProto.decode(g.bytes).graph!.node!.filter((n) =>
      n.opType === "Gemm" &&
      n.name!.startsWith("bwd/tap_dw")
    ).length;
  };
  assert.equal(tapGemms(TINY_VAE), 0);
  // conv [4, 16, 8], deconv [16, 4]: the large operand of a Conv's filter gradient is its
  // input, of a ConvTranspose's its output gradient; 16 channels has enc_conv3's input and
  // dec_deconv1's output: 9 taps each.
  const wide: VaeConfig = { ...TINY_VAE, conv: [4, 16, 8], deconv: [16, 4] };
  assert.equal(tapGemms(wide), 18);
});
