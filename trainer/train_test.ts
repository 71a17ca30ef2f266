import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { loadFashionMnist, stratifiedSubset } from "./data.ts";
import { initEngine } from "./engine/tfjs_backend.ts";
import { DEFAULT_HEAD, TINY_VAE, widenEncoder } from "./model.ts";
import { learningRateAt, type TrainConfig, trainVae } from "./train.ts";

const data = loadFashionMnist();
const small = stratifiedSubset(data.train, 1024, 1);
const val = stratifiedSubset(data.test, 256, 2);
const cfg: TrainConfig = {
  vae: { ...TINY_VAE },
  head: null,
  classWeight: 0,
  epochs: 2,
  batchSize: 64,
  learningRate: 3e-3,
  seed: 5,
};

before(async () => {
  await initEngine({ log: () => {} });
});

function weightsOf(m: { encoder: tf.Sequential; decoder: tf.Sequential }): Float32Array[] {
  return [...m.encoder.getWeights(), ...m.decoder.getWeights()].map((t) =>
    t.dataSync() as Float32Array
  );
}

test("a tiny VAE trains on real images and its loss and validation ELBO fall", async () => {
  const { history, models } = await trainVae({ ...cfg, epochs: 3 }, small, {
    val,
    progress: false,
  });
  assert.equal(history.length, 3);
  const first = history[0], last = history[2];
  assert.ok(
    last.train.loss < first.train.loss,
    `train loss ${first.train.loss} -> ${last.train.loss}`,
  );
  assert.ok(last.val!.elbo < first.val!.elbo, `val -ELBO ${first.val!.elbo} -> ${last.val!.elbo}`);
  // An untrained decoder scores ~543 nats (784 * ln 2); even 3 tiny epochs must beat that clearly.
  assert.ok(last.val!.elbo < 460, `val -ELBO ${last.val!.elbo}`);
  models.encoder.dispose();
  models.decoder.dispose();
});

test("training is repeatable: the same seed gives identical weights", async () => {
  const a = await trainVae({ ...cfg, epochs: 1 }, small, { progress: false });
  const b = await trainVae({ ...cfg, epochs: 1 }, small, { progress: false });
  assert.deepEqual(weightsOf(a.models), weightsOf(b.models));
});

test("augmentation is deterministic under the seed, changes training, and travels in the config", async () => {
  const augment = { shift: 2, flip: 0.5, scale: 0.1, contrast: 0.1 };
  const a = await trainVae({ ...cfg, epochs: 1, augment }, small, { progress: false });
  const b = await trainVae({ ...cfg, epochs: 1, augment }, small, { progress: false });
  const plain = await trainVae({ ...cfg, epochs: 1 }, small, { progress: false });
  assert.deepEqual(weightsOf(a.models), weightsOf(b.models));
  assert.notDeepEqual(weightsOf(a.models), weightsOf(plain.models));
  assert.deepEqual(a.config.augment, augment);
});

test("checkpoint save then resume gives weights identical to an uninterrupted run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ckpt-"));
  try {
    const ck = join(dir, "checkpoint.bin");
    const straight = await trainVae(cfg, small, { progress: false });
    // Interrupt in the middle of epoch 2 (step 5), as Ctrl-C would, then resume.
    let steps = 0;
    const stepsPerEpoch = Math.floor(small.count / cfg.batchSize);
    const part = await trainVae(cfg, small, {
      progress: false,
      checkpointPath: ck,
      log: () => {},
      shouldStop: () => steps++ >= stepsPerEpoch + 5,
    });
    assert.equal(part.stopped, true);
    // Saving and resuming keep no stray tensors: only the resumed models' weights stay alive.
    part.models.encoder.dispose();
    part.models.decoder.dispose();
    const beforeResume = tf.memory().numTensors;
    const resumed = await trainVae(cfg, small, {
      progress: false,
      resumeFrom: ck,
      checkpointPath: ck,
      log: () => {},
    });
    const held = resumed.models.encoder.weights.length + resumed.models.decoder.weights.length;
    assert.equal(
      tf.memory().numTensors - beforeResume,
      held,
      "tensors leaked by checkpoint save/resume",
    );
    assert.equal(resumed.history.length, 1 + 1);
    const wa = weightsOf(straight.models), wb = weightsOf(resumed.models);
    assert.equal(wa.length, wb.length);
    wa.forEach((w, i) => assert.deepEqual(wb[i], w, `weight ${i} differs after resume`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a corrupt checkpoint is refused with a clear message", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ckpt-"));
  try {
    const ck = join(dir, "checkpoint.bin");
    writeFileSync(ck, "not a checkpoint");
    await assert.rejects(
      trainVae(cfg, small, { progress: false, resumeFrom: ck }),
      /not a latent-edge checkpoint/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a joint head learns to classify and no tensors leak per step", async () => {
  const before = tf.memory().numTensors;
  const { models, history } = await trainVae(
    { ...cfg, head: { ...DEFAULT_HEAD, hidden: [32] }, classWeight: 100, epochs: 6 },
    small,
    { val, progress: false },
  );
  assert.ok(history[5].val!.acc > 0.5, `joint head val accuracy ${history[5].val!.acc}`);
  const held = models.encoder.weights.length + models.decoder.weights.length +
    models.head!.weights.length;
  // Only the models' own variables remain: no per-step tensor survives the loop.
  assert.equal(tf.memory().numTensors - before, held);
});

test("--lr-schedule cosine: lr from the configured rate to 0 over the run, applied to the steps", async () => {
  const c: TrainConfig = { ...cfg, epochs: 2, lrSchedule: "cosine" };
  assert.equal(learningRateAt(c, 0, 8), cfg.learningRate);
  assert.ok(Math.abs(learningRateAt(c, 8, 8) - cfg.learningRate / 2) < 1e-12);
  assert.equal(learningRateAt(c, 16, 8), 0);
  assert.equal(learningRateAt({ ...c, lrSchedule: undefined }, 8, 8), cfg.learningRate);
  const sub = stratifiedSubset(data.train, 256, 3);
  const a = await trainVae({ ...c, epochs: 1 }, sub, { progress: false });
  const b = await trainVae({ ...c, epochs: 1 }, sub, { progress: false });
  const constant = await trainVae({ ...cfg, epochs: 1 }, sub, { progress: false });
  assert.deepEqual(weightsOf(a.models), weightsOf(b.models));
  // The onnxruntime engine follows the same schedule: its weights are the tfjs ones (float error).
  const ort = await trainVae({ ...c, epochs: 1 }, sub, { progress: false, engine: "ort" });
  const diff = (x: Float32Array[], y: Float32Array[]) =>
    Math.max(...x.map((w, i) => Math.max(...w.map((v, j) => Math.abs(v - y[i][j])))));
  const ortDiff = diff(weightsOf(ort.models), weightsOf(a.models));
  const scheduleDiff = diff(weightsOf(constant.models), weightsOf(a.models));
  assert.ok(
    ortDiff < scheduleDiff / 10,
    `ort vs tfjs ${ortDiff}, cosine vs constant ${scheduleDiff}`,
  );
  assert.notDeepEqual(weightsOf(a.models), weightsOf(constant.models));
});

test("--width: widenEncoder scales the encoder's convs and hidden units; the widened VAE trains", async () => {
  assert.deepEqual(widenEncoder(TINY_VAE, 1), TINY_VAE);
  const wide = widenEncoder(TINY_VAE, 2);
  assert.deepEqual(wide.conv, [8, 16, 16]);
  assert.equal(wide.encDense, 32);
  assert.equal(wide.latent, TINY_VAE.latent);
  assert.deepEqual(wide.decDense, TINY_VAE.decDense);
  assert.throws(() => widenEncoder(TINY_VAE, 0), /width factor must be a positive number/);
  const { models, history } = await trainVae({ ...cfg, vae: wide, epochs: 1 }, small, {
    progress: false,
    engine: "ort",
    log: () => {},
  });
  assert.equal(models.encoder.getLayer("enc_conv2").getWeights()[0].shape[3], 16);
  assert.ok(Number.isFinite(history[0].train.loss), `loss ${history[0].train.loss}`);
});
