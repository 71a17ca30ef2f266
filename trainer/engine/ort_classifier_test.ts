/**
 * The ort engine's classifier graph (the experiments' pixel-CNN baseline) against tfjs (cpu
 * backend, the reference): with the same dropout mask, the gradient of every parameter and
 * the loss must be tfjs's; Adam steps must land on tfjs's weights; training on real images must
 * learn; masks must follow tfjs's dropout (drop rate, 1/(1 - rate) scale).
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { PIXELS } from "../../common/labels.ts";
import { normalizePixels } from "../../common/preprocess.ts";
import { loadFashionMnist, type Split, stratifiedSubset } from "../data.ts";
import { classLoss } from "../model.ts";
import { buildPixelCnn, type CnnConfig, DEFAULT_CNN, TINY_CNN } from "../model_cnn.ts";
import { OrtTrainer } from "./ort_train.ts";
import { relErr } from "./testdata/compare.ts";

const data = loadFashionMnist();

before(async () => {
  await tf.setBackend("cpu");
  await tf.ready();
});

function pixels(split: Split, n: number): Float32Array {
  const out = new Float32Array(n * PIXELS);
  normalizePixels(split.images.subarray(0, n * PIXELS), out);
  return out;
}

/** tfjs's forward pass with dropout replaced by the given mask (train-mode dropout with a known draw). */
function tfjsLoss(
  model: tf.Sequential,
  x: Float32Array,
  labels: Int32Array,
  mask: Float32Array | null,
): tf.Scalar {
  const n = labels.length;
  let h: tf.Tensor = tf.tensor4d(x, [n, 28, 28, 1]);
  for (const layer of model.layers) {
    if (layer.getClassName() === "Dropout") {
      if (mask) h = tf.mul(h, tf.tensor2d(mask, h.shape as [number, number]));
      continue;
    }
    h = layer.apply(h) as tf.Tensor;
  }
  return classLoss(h as tf.Tensor2D, tf.tensor1d(labels, "int32"));
}

/** A mask source that records what it hands out, so the tfjs reference can use the same mask. */
function recordingMask(seed: number, units: number, B: number, rate: number) {
  let s = seed;
  const draws: number[] = [];
  const next = () => {
    s = (s * 16807) % 2147483647;
    const u = s / 2147483647;
    draws.push(u);
    return u;
  };
  const lastMask = () =>
    Float32Array.from(draws.slice(-B * units), (u) => (u < 1 - rate ? 1 / (1 - rate) : 0));
  return { next, lastMask };
}

async function checkGradients(cfg: CnnConfig, B: number) {
  const split = stratifiedSubset(data.train, B, 9);
  const model = buildPixelCnn(cfg);
  const t = await OrtTrainer.createClassifier(model, { batchSize: B, learningRate: 1e-3 });
  const rec = recordingMask(12345, cfg.dense, B, cfg.dropout);
  t.setMaskSource(rec.next);
  const x = pixels(split, B);
  const labels = Int32Array.from(split.labels.subarray(0, B));
  const ours = await t.gradientsTfjs(x, new Float32Array(0), labels);
  const mask = cfg.dropout > 0 ? rec.lastMask() : null;
  if (mask) {
    const dropped = mask.filter((v) => v === 0).length / mask.length;
    assert.ok(
      Math.abs(dropped - cfg.dropout) < 0.1,
      `dropped fraction ${dropped} vs rate ${cfg.dropout}`,
    );
  }
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const ref = tf.tidy(() => {
    let loss = 0;
    const { value, grads } = tf.variableGrads(() => {
      const l = tfjsLoss(model, x, labels, mask);
      loss = l.dataSync()[0];
      return l;
    }, vars);
    value.dispose();
    return { loss, grads: vars.map((v) => grads[v.name].dataSync() as Float32Array) };
  });
  assert.equal(ours.grads.length, ref.grads.length);
  let worst = 0;
  ours.grads.forEach((g, i) => {
    assert.ok(ref.grads[i].some((v) => v !== 0), `tfjs gradient of ${vars[i].name} is all zero`);
    const e = relErr(g, ref.grads[i]);
    assert.ok(e < 1e-4, `gradient of ${vars[i].name}: relative error ${e}`);
    worst = Math.max(worst, e);
  });
  assert.ok(
    Math.abs(ours.parts.loss - ref.loss) < 1e-5 * ref.loss,
    `loss ${ours.parts.loss} vs tfjs ${ref.loss}`,
  );
  console.log(
    `# classifier graph ${JSON.stringify(cfg.filters)}: max relative gradient error ${
      worst.toExponential(2)
    } over ${vars.length} tensors`,
  );
  await t.dispose();
}

test("gradients of every parameter match tfjs: tiny CNN with dropout", async () => {
  await checkGradients({ ...TINY_CNN, dropout: 0.4 }, 16);
});

test("gradients of every parameter match tfjs: the experiments' CNN (DEFAULT_CNN, dropout 0.3)", async () => {
  await checkGradients({ ...DEFAULT_CNN }, 4);
});

test("Adam steps without dropout land on tfjs's weights", async () => {
  const B = 16, steps = 4;
  const cfg = { ...TINY_CNN, dropout: 0 };
  const split = stratifiedSubset(data.train, B * steps, 4);
  const x = pixels(split, B * steps);
  const labels = Int32Array.from(split.labels);
  const ours = buildPixelCnn(cfg), ref = buildPixelCnn(cfg);
  const t = await OrtTrainer.createClassifier(ours, { batchSize: B, learningRate: 3e-3 });
  const opt = tf.train.adam(3e-3);
  const vars = ref.trainableWeights.map((w) => w.read() as tf.Variable);
  for (let s = 0; s < steps; s++) {
    const xb = x.subarray(s * B * PIXELS, (s + 1) * B * PIXELS),
      yb = labels.subarray(s * B, (s + 1) * B);
    await t.classifierStep(xb, yb);
    opt.minimize(() => tfjsLoss(ref, xb, yb, null), false, vars);
  }
  t.writeTo({ classifier: ours });
  let worst = 0;
  ours.trainableWeights.forEach((w, i) => {
    const a = w.read().dataSync() as Float32Array, b = vars[i].dataSync() as Float32Array;
    a.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[j]))));
  });
  assert.ok(worst < 1e-4, `weights after ${steps} Adam steps differ from tfjs's by ${worst}`);
  opt.dispose();
  await t.dispose();
});

test("training on real images learns (tiny CNN, 40 steps); a wrong input size is refused", async () => {
  const B = 32;
  const split = stratifiedSubset(data.train, B * 8, 2);
  const x = pixels(split, B * 8);
  const model = buildPixelCnn({ ...TINY_CNN, dropout: 0.2 });
  const t = await OrtTrainer.createClassifier(model, {
    batchSize: B,
    learningRate: 1e-2,
    dropoutSeed: 3,
  });
  const losses: number[] = [];
  for (let s = 0; s < 40; s++) {
    const k = s % 8;
    const r = await t.classifierStep(
      x.subarray(k * B * PIXELS, (k + 1) * B * PIXELS),
      split.labels.subarray(k * B, (k + 1) * B),
    );
    losses.push(r.loss);
    assert.ok(r.correct >= 0 && r.correct <= B);
  }
  const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5,
    last = losses.slice(-5).reduce((a, b) => a + b) / 5;
  assert.ok(last < 0.7 * first, `loss did not fall: ${first.toFixed(3)} -> ${last.toFixed(3)}`);
  await assert.rejects(
    t.step(x.subarray(0, B * PIXELS), new Float32Array(1), split.labels.subarray(0, B)),
    /eps has 1 values/,
  );
  await t.dispose();
});
