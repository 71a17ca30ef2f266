/**
 * The ort training engine against tfjs (pure-JS cpu backend, the reference): the hand-written
 * backward graph must give tfjs's gradients for every parameter (VAE alone and with a joint
 * head), Adam must be tfjs's Adam, several steps must land on tfjs's weights, the loss must fall,
 * and weights / optimizer state must round-trip through the tfjs models. Tiny configs, real
 * Fashion-MNIST images.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { PIXELS } from "../../common/labels.ts";
import { normalizePixels } from "../../common/preprocess.ts";
import { loadFashionMnist, type Split, stratifiedSubset } from "../data.ts";
import {
  buildDecoder,
  buildEncoder,
  buildHead,
  classLoss,
  DEFAULT_HEAD,
  type HeadConfig,
  sampleLatent,
  splitMoments,
  TINY_VAE,
  type VaeConfig,
  vaeLoss,
} from "../model.ts";
import { type TrainConfig, trainVae } from "../train.ts";
import { type OrtModels, OrtTrainer } from "./ort_train.ts";
import { relErr } from "./testdata/compare.ts";

const data = loadFashionMnist();
const B = 32;
const batch = stratifiedSubset(data.train, B, 3);
const TINY_HEAD: HeadConfig = { kind: "mlp", hidden: [16, 8], dropout: 0, seed: 7 };

before(async () => {
  await tf.setBackend("cpu");
  await tf.ready();
});

function pixels(split: Split, start: number, n: number): Float32Array {
  const out = new Float32Array(n * PIXELS);
  normalizePixels(split.images.subarray(start * PIXELS, (start + n) * PIXELS), out);
  return out;
}

function labelsOf(split: Split, start: number, n: number): Float32Array {
  return Float32Array.from(split.labels.subarray(start, start + n));
}

function build(vae: VaeConfig, head: HeadConfig | null): OrtModels {
  return {
    encoder: buildEncoder(vae),
    decoder: buildDecoder(vae),
    head: head ? buildHead(vae.latent, head) : null,
  };
}

function vars(m: OrtModels): tf.Variable[] {
  return [m.encoder, m.decoder, ...(m.head ? [m.head] : [])].flatMap((s) =>
    s.trainableWeights.map((w) => w.read() as tf.Variable)
  );
}

function noise(n: number, latent: number, seed: number): Float32Array {
  return tf.tidy(() =>
    tf.randomNormal([n, latent], 0, 1, "float32", seed).dataSync() as Float32Array
  );
}

/** The loss of train_step.ts's tfjs step, with the given eps. */
function tfjsLoss(
  m: OrtModels,
  latent: number,
  x: Float32Array,
  eps: Float32Array,
  y: Float32Array,
  classWeight: number,
) {
  const n = x.length / PIXELS;
  const xt = tf.tensor4d(x, [n, 28, 28, 1]);
  const { mu, logvar } = splitMoments(
    m.encoder.apply(xt, { training: true }) as tf.Tensor2D,
    latent,
  );
  const z = sampleLatent(mu, logvar, tf.tensor2d(eps, [n, latent]));
  const l = vaeLoss(xt, m.decoder.apply(z, { training: true }) as tf.Tensor, mu, logvar);
  let total = l.total;
  let ce = tf.scalar(0);
  if (m.head) {
    ce = classLoss(m.head.apply(mu, { training: true }) as tf.Tensor2D, tf.tensor1d(y));
    total = tf.add(total, tf.mul(ce, classWeight)) as tf.Scalar;
  }
  return { total, rec: l.rec, kl: l.kl, ce };
}

/** The loss's parts and the gradient of every trainable weight, on tfjsLoss's arguments. */
function tfjsGrads(...args: Parameters<typeof tfjsLoss>) {
  return tf.tidy(() => {
    let parts: number[] = [];
    const vs = vars(args[0]);
    const { value, grads } = tf.variableGrads(() => {
      const l = tfjsLoss(...args);
      parts = [l.total, l.rec, l.kl, l.ce].map((t) => t.dataSync()[0]);
      return l.total;
    }, vs);
    value.dispose();
    return { parts, grads: vs.map((v) => grads[v.name].dataSync() as Float32Array) };
  });
}

/** An OrtTrainer on `m` for a latent of `latent`, at batch B unless told otherwise. */
function ortTrainer(
  m: Parameters<typeof OrtTrainer.create>[0],
  latent: number,
  learningRate: number,
  classWeight: number,
  batchSize = B,
): Promise<OrtTrainer> {
  return OrtTrainer.create(m, { latent, batchSize, learningRate, classWeight });
}

async function checkGradients(head: HeadConfig | null, classWeight: number) {
  const vae = { ...TINY_VAE };
  const m = build(vae, head);
  const x = pixels(batch, 0, B), y = labelsOf(batch, 0, B), eps = noise(B, vae.latent, 42);
  const t = await ortTrainer(m, vae.latent, 1e-3, classWeight);
  const ours = await t.gradientsTfjs(x, eps, y);
  const ref = tfjsGrads(m, vae.latent, x, eps, y, classWeight);
  const names = vars(m).map((v) => v.name);
  assert.equal(ours.grads.length, ref.grads.length);
  let worst = 0, worstName = "";
  ours.grads.forEach((g, i) => {
    const e = relErr(g, ref.grads[i]);
    assert.ok(
      ref.grads[i].some((v) => v !== 0) || !head || classWeight === 0,
      `tfjs gradient of ${names[i]} is all zero`,
    );
    assert.ok(e < 1e-4, `gradient of ${names[i]}: relative error ${e}`);
    if (e > worst) [worst, worstName] = [e, names[i]];
  });
  const [total, rec, kl, ce] = ref.parts;
  assert.ok(
    Math.abs(ours.parts.loss - total) < 1e-5 * Math.abs(total),
    `loss ${ours.parts.loss} vs ${total}`,
  );
  assert.ok(
    Math.abs(ours.parts.rec - rec) < 1e-5 * Math.abs(rec),
    `rec ${ours.parts.rec} vs ${rec}`,
  );
  assert.ok(
    Math.abs(ours.parts.kl - kl) < 1e-4 * Math.abs(kl) + 1e-6,
    `kl ${ours.parts.kl} vs ${kl}`,
  );
  if (head) {
    assert.ok(Math.abs(ours.parts.ce - ce) < 1e-5 * Math.abs(ce), `ce ${ours.parts.ce} vs ${ce}`);
  }
  console.log(
    `# max relative gradient error ${head ? "with head" : "VAE"}: ${
      worst.toExponential(2)
    } (${worstName}); ${ours.grads.length} tensors`,
  );
  await t.dispose();
}

test("gradients of every parameter match tfjs: VAE alone", async () => {
  await checkGradients(null, 0);
});

test("gradients of every parameter match tfjs: VAE + joint head", async () => {
  await checkGradients(TINY_HEAD, 0.7);
});

test("gradients match tfjs with the default head and kernel 5 (other pads)", async () => {
  const vae = { ...TINY_VAE, kernel: 5, latent: 3 };
  const m = build(vae, { ...DEFAULT_HEAD, hidden: [12] });
  const x = pixels(batch, 0, 8), y = labelsOf(batch, 0, 8), eps = noise(8, vae.latent, 7);
  const t = await ortTrainer(m, vae.latent, 1e-3, 2, 8);
  const ours = await t.gradientsTfjs(x, eps, y);
  const ref = tfjsGrads(m, vae.latent, x, eps, y, 2);
  ours.grads.forEach((g, i) =>
    assert.ok(relErr(g, ref.grads[i]) < 1e-4, `tensor ${i}: ${relErr(g, ref.grads[i])}`)
  );
  await t.dispose();
});

test("Adam is tfjs's Adam bit for bit on the same gradients", async () => {
  const vae = { ...TINY_VAE };
  const m = build(vae, TINY_HEAD);
  const t = await ortTrainer(m, vae.latent, 2e-3, 1);
  const opt = tf.train.adam(2e-3);
  const vs = vars(m);
  for (let s = 0; s < 4; s++) {
    const x = pixels(batch, 0, B), y = labelsOf(batch, 0, B), eps = noise(B, vae.latent, 100 + s);
    const ref = tfjsGrads(m, vae.latent, x, eps, y, 1);
    t.applyGradientsTfjs(ref.grads);
    opt.applyGradients(
      vs.map((v, i) => ({ name: v.name, tensor: tf.tensor(ref.grads[i], v.shape) })),
    );
  }
  const ours = t.weightsTfjs();
  vs.forEach((v, i) =>
    assert.deepEqual(ours[i], v.dataSync(), `weight ${v.name} differs from tfjs Adam`)
  );
  const st = t.getOptimizerState();
  const ow = await opt.getWeights();
  assert.equal(st.iterations, ow[0].tensor.dataSync()[0]);
  vs.forEach((v, i) => {
    assert.deepEqual(st.m[i], ow[1 + i].tensor.dataSync(), `m of ${v.name}`);
    assert.deepEqual(st.v[i], ow[1 + vs.length + i].tensor.dataSync(), `v of ${v.name}`);
  });
  const a = opt as unknown as { accBeta1: tf.Variable; accBeta2: tf.Variable };
  assert.equal(st.accBeta1, a.accBeta1.dataSync()[0]);
  assert.equal(st.accBeta2, a.accBeta2.dataSync()[0]);
  opt.dispose();
  await t.dispose();
});

test("Adam in the graph equals Adam in JS (= tfjs's) bit for bit", async () => {
  const vae = { ...TINY_VAE };
  const m = build(vae, TINY_HEAD);
  const opts = { latent: vae.latent, batchSize: B, learningRate: 2e-3, classWeight: 1 };
  const inGraph = await OrtTrainer.create(m, { ...opts, adam: "graph" });
  const inJs = await OrtTrainer.create(m, { ...opts, adam: "js" });
  for (let s = 0; s < 3; s++) {
    const x = pixels(batch, 0, B), y = labelsOf(batch, 0, B), eps = noise(B, vae.latent, 300 + s);
    assert.deepEqual(await inGraph.step(x, eps, y), await inJs.step(x, eps, y));
  }
  assert.deepEqual(inGraph.weightsTfjs(), inJs.weightsTfjs());
  assert.deepEqual(inGraph.getOptimizerState(), inJs.getOptimizerState());
  await inGraph.dispose();
  await inJs.dispose();
});

test("several Adam steps land on tfjs's weights (within float error)", async () => {
  const vae = { ...TINY_VAE };
  const mOrt = build(vae, TINY_HEAD), mTf = build(vae, TINY_HEAD);
  const lr = 1e-3, steps = 5;
  const t = await ortTrainer(mOrt, vae.latent, lr, 0.5);
  const opt = tf.train.adam(lr);
  const vs = vars(mTf);
  const xs = stratifiedSubset(data.train, B * steps, 9);
  let lastOrt = 0, lastTf = 0;
  for (let s = 0; s < steps; s++) {
    const x = pixels(xs, s * B, B), y = labelsOf(xs, s * B, B), eps = noise(B, vae.latent, 500 + s);
    lastOrt = (await t.step(x, eps, y)).loss;
    const cost = opt.minimize(() => tfjsLoss(mTf, vae.latent, x, eps, y, 0.5).total, true, vs)!;
    lastTf = cost.dataSync()[0];
    cost.dispose();
  }
  assert.ok(
    Math.abs(lastOrt - lastTf) < 1e-4 * Math.abs(lastTf),
    `last loss ${lastOrt} vs ${lastTf}`,
  );
  const ours = t.weightsTfjs();
  let worst = 0;
  vs.forEach((v, i) => {
    const ref = v.dataSync() as Float32Array;
    let d = 0;
    for (let j = 0; j < ref.length; j++) d = Math.max(d, Math.abs(ours[i][j] - ref[j]));
    worst = Math.max(worst, d);
    // Each Adam step moves a weight by at most ~lr; disagreement must be a tiny fraction of that.
    assert.ok(d < 0.02 * lr * steps, `weight ${v.name}: max abs diff ${d} after ${steps} steps`);
  });
  console.log(
    `# after ${steps} Adam steps: max |w_ort - w_tfjs| = ${worst.toExponential(2)} (lr ${lr})`,
  );
  opt.dispose();
  await t.dispose();
});

test("the loss falls when training on real images", async () => {
  const vae = { ...TINY_VAE };
  const m = build(vae, TINY_HEAD);
  const train = stratifiedSubset(data.train, 512, 4);
  const t = await ortTrainer(m, vae.latent, 3e-3, 1, 64);
  const epoch = async (e: number) => {
    let sum = 0, correct = 0;
    for (let s = 0; s < 8; s++) {
      const r = await t.step(
        pixels(train, s * 64, 64),
        noise(64, vae.latent, e * 100 + s),
        labelsOf(train, s * 64, 64),
      );
      sum += r.loss;
      correct += r.correct;
      assert.ok(Number.isFinite(r.loss));
    }
    return { loss: sum / 8, acc: correct / 512 };
  };
  const first = await epoch(0);
  let last = first;
  for (let e = 1; e < 4; e++) last = await epoch(e);
  assert.ok(last.loss < first.loss - 20, `loss ${first.loss} -> ${last.loss}`);
  await t.dispose();
});

test("weights and optimizer state round-trip through the tfjs models", async () => {
  const vae = { ...TINY_VAE };
  const m = build(vae, TINY_HEAD);
  const t = await ortTrainer(m, vae.latent, 1e-3, 1);
  await t.step(pixels(batch, 0, B), noise(B, vae.latent, 1), labelsOf(batch, 0, B));
  await t.step(pixels(batch, 0, B), noise(B, vae.latent, 2), labelsOf(batch, 0, B));
  t.writeTo(m);
  const w = t.weightsTfjs();
  vars(m).forEach((v, i) => assert.deepEqual(v.dataSync(), w[i]));
  // A second trainer reading the models and the state continues exactly like the first.
  const t2 = await ortTrainer(m, vae.latent, 1e-3, 1);
  t2.setOptimizerState(t.getOptimizerState());
  const x = pixels(batch, 0, B), eps = noise(B, vae.latent, 3), y = labelsOf(batch, 0, B);
  const [r1, r2] = [await t.step(x, eps, y), await t2.step(x, eps, y)];
  assert.deepEqual(r1, r2);
  assert.deepEqual(t.weightsTfjs(), t2.weightsTfjs());
  await t.dispose();
  await t2.dispose();
});

test("dropout and unsupported activations are refused with a clear message", async () => {
  const m = build({ ...TINY_VAE }, { ...TINY_HEAD, dropout: 0.2 });
  await assert.rejects(
    OrtTrainer.create(m, { latent: TINY_VAE.latent, batchSize: 4, learningRate: 1e-3 }),
    /dropout/,
  );
});

// ---- integration: trainVae({engine: "ort"})

const small = stratifiedSubset(data.train, 256, 1);
const loopCfg: TrainConfig = {
  vae: { ...TINY_VAE },
  head: TINY_HEAD,
  classWeight: 1,
  epochs: 2,
  batchSize: 64,
  learningRate: 3e-3,
  seed: 5,
};

function modelWeights(m: OrtModels): Float32Array[] {
  return vars(m).map((v) => v.dataSync() as Float32Array);
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  let d = 0;
  a.forEach((w, i) => w.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i][j])))));
  return d;
}

test("trainVae with engine ort follows the tfjs engine (same data, noise, Adam)", async () => {
  const a = await trainVae(loopCfg, small, { progress: false, engine: "tfjs", log: () => {} });
  const before = tf.memory().numTensors;
  const b = await trainVae(loopCfg, small, { progress: false, engine: "ort", log: () => {} });
  const own = [b.models.encoder, b.models.decoder, b.models.head!].reduce(
    (n, m) => n + m.weights.length,
    0,
  );
  assert.equal(
    tf.memory().numTensors - before,
    own,
    "the ort loop must leave only the models' weights",
  );
  assert.equal(b.history.length, 2);
  a.history.forEach((h, i) => {
    const o = b.history[i].train;
    assert.ok(
      Math.abs(o.loss - h.train.loss) < 1e-4 * h.train.loss,
      `epoch ${i + 1} loss ${o.loss} vs ${h.train.loss}`,
    );
    assert.equal(o.acc, h.train.acc);
  });
  const d = maxAbsDiff(modelWeights(b.models), modelWeights(a.models));
  console.log(`# trainVae 2 epochs (8 steps): max |w_ort - w_tfjs| = ${d.toExponential(2)}`);
  assert.ok(d < 1e-4, `weights differ by ${d}`);
});

test("ort checkpoints resume bit-for-bit with ort and load in the tfjs engine", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ort-ckpt-"));
  try {
    const ck = join(dir, "checkpoint.bin");
    const straight = await trainVae(loopCfg, small, {
      progress: false,
      engine: "ort",
      log: () => {},
    });
    let steps = 0;
    const part = await trainVae(loopCfg, small, {
      progress: false,
      engine: "ort",
      checkpointPath: ck,
      log: () => {},
      shouldStop: () => steps++ >= 4 + 2,
    });
    assert.equal(part.stopped, true);
    const resumed = await trainVae(loopCfg, small, {
      progress: false,
      engine: "ort",
      resumeFrom: ck,
      log: () => {},
    });
    assert.deepEqual(modelWeights(resumed.models), modelWeights(straight.models));
    const byTfjs = await trainVae(loopCfg, small, {
      progress: false,
      engine: "tfjs",
      resumeFrom: ck,
      log: () => {},
    });
    const d = maxAbsDiff(modelWeights(byTfjs.models), modelWeights(straight.models));
    assert.ok(d < 1e-4, `tfjs resume of an ort checkpoint differs by ${d}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
