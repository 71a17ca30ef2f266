/**
 * A joint head reading the encoder's hidden features (HeadConfig.input "hidden"): the ort
 * training graph must give tfjs's gradients for every parameter, the encoder's trunk taking the
 * sum of the moments' and the head's gradients; and the serving export must reproduce tfjs's
 * probabilities. Tiny configs, real Fashion-MNIST images.
 */
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { PIXELS } from "../../common/labels.ts";
import { normalizePixels } from "../../common/preprocess.ts";
import { SERVING_IO } from "../../bundle/tensors.ts";
import { loadFashionMnist, stratifiedSubset } from "../data.ts";
import { exportServingModel } from "../export/onnx.ts";
import {
  buildDecoder,
  buildEncoder,
  buildHead,
  classLoss,
  encodeParts,
  type HeadConfig,
  headInputWidth,
  headLogits,
  sampleLatent,
  splitMoments,
  TINY_VAE,
  vaeLoss,
} from "../model.ts";
import { type TrainConfig, trainVae } from "../train.ts";
import { OrtTrainer } from "./ort_train.ts";
import { relErr } from "./testdata/compare.ts";

const B = 16;
const train = loadFashionMnist().train;
const batch = stratifiedSubset(train, B, 5);
const HEAD: HeadConfig = { kind: "mlp", hidden: [12], dropout: 0, seed: 7, input: "hidden" };
const vae = { ...TINY_VAE, latent: 3 };
const QUIET = { progress: false, log: () => {} };

before(async () => {
  await tf.setBackend("cpu");
  await tf.ready();
});

function inputs() {
  const x = new Float32Array(B * PIXELS);
  normalizePixels(batch.images.subarray(0, B * PIXELS), x);
  const y = Float32Array.from(batch.labels.subarray(0, B));
  const eps = tf.tidy(() => tf.randomNormal([B, vae.latent], 0, 1, "float32", 3).dataSync());
  return { x, y, eps: eps as Float32Array };
}

function models() {
  return {
    encoder: buildEncoder(vae),
    decoder: buildDecoder(vae),
    head: buildHead(headInputWidth(vae, HEAD), HEAD),
  };
}

test("headInputWidth: mu is the latent, hidden the encoder's dense units; unknown is refused", () => {
  assert.equal(headInputWidth(vae, { ...HEAD, input: "mu" }), 3);
  assert.equal(headInputWidth(vae, HEAD), TINY_VAE.encDense);
  assert.equal(headInputWidth(vae, { ...HEAD, input: undefined }), 3);
  assert.throws(
    () => headInputWidth(vae, { ...HEAD, input: "pixels" as never }),
    /Unknown head input "pixels"/,
  );
});

test("ort gradients match tfjs with the head on the hidden features", async () => {
  const m = models();
  const { x, y, eps } = inputs();
  const cw = 1.5;
  const vs = [m.encoder, m.decoder, m.head].flatMap((s) =>
    s.trainableWeights.map((w) => w.read() as tf.Variable)
  );
  const ref = tf.tidy(() => {
    const { grads, value } = tf.variableGrads(() => {
      const xt = tf.tensor4d(x, [B, 28, 28, 1]);
      const enc = encodeParts(m.encoder, xt, true);
      const { mu, logvar } = splitMoments(enc.moments, vae.latent);
      const z = sampleLatent(mu, logvar, tf.tensor2d(eps, [B, vae.latent]));
      const l = vaeLoss(xt, m.decoder.apply(z) as tf.Tensor, mu, logvar);
      const ce = classLoss(
        headLogits(m.head, HEAD.input, { hidden: enc.hidden, mu }, true),
        tf.tensor1d(y),
      );
      return tf.add(l.total, tf.mul(ce, cw)) as tf.Scalar;
    }, vs);
    value.dispose();
    return vs.map((v) => grads[v.name].dataSync() as Float32Array);
  });
  const t = await OrtTrainer.create(m, {
    latent: vae.latent,
    batchSize: B,
    learningRate: 1e-3,
    classWeight: cw,
    headInput: "hidden",
  });
  const ours = await t.gradientsTfjs(x, eps, y);
  await t.dispose();
  assert.equal(ours.grads.length, ref.length);
  const names = vs.map((v) => v.name);
  ours.grads.forEach((g, i) => {
    assert.ok(ref[i].some((v) => v !== 0), `tfjs gradient of ${names[i]} is all zero`);
    const e = relErr(g, ref[i]);
    assert.ok(e < 1e-4, `gradient of ${names[i]}: relative error ${e}`);
  });
});

test("a head on mu cannot be exported as reading the hidden features, and vice versa", () => {
  const m = models();
  assert.throws(
    () => exportServingModel(m.encoder, m.head, vae.latent, "mu"),
    /head input has shape \[16\], expected \[3\]/,
  );
  const muHead = buildHead(vae.latent, { ...HEAD, input: "mu" });
  assert.throws(
    () => exportServingModel(m.encoder, muHead, vae.latent, "hidden"),
    /head input \(hidden\) has shape \[3\], expected \[16\]/,
  );
});

test("the serving export with a hidden-features head reproduces tfjs", async () => {
  const m = models();
  const { x } = inputs();
  const session = await ort.InferenceSession.create(
    exportServingModel(m.encoder, m.head, vae.latent, "hidden"),
  );
  const out = await session.run({
    [SERVING_IO.input]: new ort.Tensor("float32", x, [B, 1, 28, 28]),
  });
  await session.release();
  const ref = tf.tidy(() => {
    const enc = encodeParts(m.encoder, tf.tensor4d(x, [B, 28, 28, 1]));
    const { mu } = splitMoments(enc.moments, vae.latent);
    return {
      p: tf.softmax(headLogits(m.head, HEAD.input, { hidden: enc.hidden, mu })).dataSync(),
      mu: mu.dataSync(),
    };
  });
  const p = out[SERVING_IO.probabilities].data as Float32Array;
  let worst = 0;
  p.forEach((v, i) => worst = Math.max(worst, Math.abs(v - ref.p[i])));
  assert.ok(worst <= 1e-5, `probabilities differ by ${worst}`);
  const mu = out[SERVING_IO.mu].data as Float32Array;
  mu.forEach((v, i) => assert.ok(Math.abs(v - ref.mu[i]) <= 1e-5, `mu[${i}] ${v} vs ${ref.mu[i]}`));
});

test("trainVae: a hidden-features head trains alike on both engines", async () => {
  const cfg: TrainConfig = {
    vae,
    head: HEAD,
    classWeight: 20,
    epochs: 3,
    batchSize: 64,
    learningRate: 3e-3,
    seed: 5,
  };
  const small = stratifiedSubset(train, 512, 2);
  const a = await trainVae(cfg, small, { ...QUIET, engine: "tfjs" });
  const b = await trainVae(cfg, small, { ...QUIET, engine: "ort" });
  const weights = (m: typeof a.models) =>
    [m.encoder, m.decoder, m.head!].flatMap((s) => s.getWeights().map((t) => t.dataSync()));
  const wa = weights(a.models), wb = weights(b.models);
  let d = 0;
  wa.forEach((w, i) => w.forEach((v, j) => (d = Math.max(d, Math.abs(v - wb[i][j])))));
  assert.ok(d < 1e-4, `weights differ by ${d} between the engines`);
});

test("trainVae: a hidden-features head learns to classify", async () => {
  const cfg: TrainConfig = {
    vae,
    head: { ...HEAD, hidden: [32] },
    classWeight: 100,
    epochs: 4,
    batchSize: 64,
    learningRate: 3e-3,
    seed: 5,
  };
  const r = await trainVae(cfg, stratifiedSubset(train, 1024, 1), { ...QUIET, engine: "ort" });
  const acc = r.history[3].train.acc;
  assert.ok(acc > 0.5, `train accuracy of the hidden-features head after 4 epochs: ${acc}`);
});
