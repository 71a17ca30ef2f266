/**
 * Two training lanes (ort_lanes.ts: half a batch each, this thread and a worker, gradients
 * averaged) against one OrtTrainer on the whole batch: same losses and the same weights after
 * several Adam steps, within float32 summation error. Tiny VAE with a joint head, real images.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { PIXELS } from "../../common/labels.ts";
import { normalizePixels } from "../../common/preprocess.ts";
import { loadFashionMnist, stratifiedSubset } from "../data.ts";
import { buildDecoder, buildEncoder, buildHead, type HeadConfig, TINY_VAE } from "../model.ts";
import { OrtLanes } from "./ort_lanes.ts";
import { OrtTrainer } from "./ort_train.ts";

const B = 32;
const HEAD: HeadConfig = { kind: "mlp", hidden: [16, 8], dropout: 0, seed: 7 };
const data = loadFashionMnist();
const batch = stratifiedSubset(data.train, 3 * B, 5);

before(async () => {
  await tf.setBackend("cpu");
  await tf.ready();
});

const models = () => ({
  encoder: buildEncoder(TINY_VAE),
  decoder: buildDecoder(TINY_VAE),
  head: buildHead(TINY_VAE.latent, HEAD),
});

test("two lanes give one session's losses and weights after 3 Adam steps", async () => {
  const opts = { latent: TINY_VAE.latent, batchSize: B, learningRate: 1e-3, classWeight: 10 };
  const one = await OrtTrainer.create(models(), { ...opts, adam: "js" });
  const two = await OrtLanes.create(models(), { vae: TINY_VAE, head: HEAD }, opts, 2);
  try {
    assert.equal(two.lanes, 2);
    for (let s = 0; s < 3; s++) {
      const x = normalizePixels(batch.images.subarray(s * B * PIXELS, (s + 1) * B * PIXELS));
      const y = Float32Array.from(batch.labels.subarray(s * B, (s + 1) * B));
      const eps = tf.tidy(() =>
        tf.randomNormal([B, TINY_VAE.latent], 0, 1, "float32", s).dataSync() as Float32Array
      );
      const a = await one.step(x, eps, y);
      const b = await two.step(x, eps, y);
      for (const k of ["loss", "rec", "kl", "ce"] as const) {
        assert.ok(
          Math.abs(a[k] - b[k]) <= 1e-5 * Math.max(1, Math.abs(a[k])),
          `step ${s} ${k}: ${a[k]} vs ${b[k]}`,
        );
      }
      assert.equal(a.correct, b.correct);
    }
    const wa = one.paramsFlat;
    const wb = two.paramsFlat;
    let worst = 0;
    for (let j = 0; j < wa.length; j++) worst = Math.max(worst, Math.abs(wa[j] - wb[j]));
    // Adam's first steps move each weight by about the learning rate; summation order may
    // flip a tiny gradient's sign, which moves that weight by at most ~2 lr per step.
    assert.ok(worst <= 6e-3, `largest weight difference ${worst}`);
    assert.equal(two.getOptimizerState().iterations, 3);
  } finally {
    await one.dispose();
    await two.dispose();
  }
});

test("OrtLanes refuses a lane count that does not divide the batch", async () => {
  await assert.rejects(
    OrtLanes.create(models(), { vae: TINY_VAE, head: HEAD }, {
      latent: TINY_VAE.latent,
      batchSize: 30,
      learningRate: 1e-3,
    }, 4),
    /4 lanes must divide the batch of 30/,
  );
});
