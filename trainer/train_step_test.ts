/**
 * Tests of train_step.ts: the batch, the per-step seed, and the two step engines on real images
 * (TINY VAE with a joint head, one batch of 32): the same step on the same batch and seed, no
 * leaked tensors, and the optimizer state a checkpoint takes.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { PIXELS } from "../common/labels.ts";
import { loadFashionMnist, stratifiedSubset } from "./data.ts";
import { TINY_VAE } from "./model.ts";
import { buildVaeModels, type TrainConfig, type VaeModels } from "./train.ts";
import { fillBatch, startStepEngine, type StepEngine, stepSeed } from "./train_step.ts";

const B = 32;
const batch = stratifiedSubset(loadFashionMnist().train, B, 3);
const cfg: TrainConfig = {
  vae: { ...TINY_VAE },
  head: { kind: "mlp", hidden: [8], dropout: 0, seed: 7 },
  classWeight: 2,
  epochs: 1,
  batchSize: B,
  learningRate: 3e-3,
  seed: 3,
};

// One engine of each kind for the whole file, stepped in test order: building the onnxruntime
// graph is the slow part.
let tfjs: { e: StepEngine; m: VaeModels };
let ort: { e: StepEngine; m: VaeModels };

before(async () => {
  await tf.setBackend("cpu");
  await tf.ready();
  tfjs = await engine("tfjs");
  ort = await engine("ort");
});

after(async () => {
  await tfjs.e.dispose();
  await ort.e.dispose();
});

function inputs(): { x: Float32Array; y: Float32Array } {
  const x = new Float32Array(B * PIXELS), y = new Float32Array(B);
  fillBatch(batch, Int32Array.from({ length: B }, (_, i) => i), 0, B, x, y);
  return { x, y };
}

async function engine(kind: "tfjs" | "ort"): Promise<{ e: StepEngine; m: VaeModels }> {
  const m = buildVaeModels(cfg);
  const e = await startStepEngine(kind, cfg, m, tf.train.adam(cfg.learningRate), {
    log: () => {},
  });
  return { e, m };
}

function weights(m: VaeModels): number[] {
  return [m.encoder, m.decoder, m.head!].flatMap((s) =>
    s.getWeights().flatMap((t) => Array.from(t.dataSync()))
  );
}

test("stepSeed() is distinct for every (seed, step) and the same on every call", () => {
  const seen = new Set<number>();
  for (let seed = 0; seed < 4; seed++) {
    for (let step = 0; step < 250; step++) seen.add(stepSeed(seed, step));
  }
  assert.equal(seen.size, 1000);
  assert.equal(stepSeed(5, 7), stepSeed(5, 7));
  // Checkpoints resume on these seeds: a change here changes every run's noise.
  assert.equal(stepSeed(0, 0), 467448794);
});

test("fillBatch() normalises the chosen rows into the batch and copies their labels", () => {
  const x = new Float32Array(2 * PIXELS), y = new Float32Array(2);
  fillBatch(batch, [9, 4, 17], 1, 2, x, y);
  assert.deepEqual(Array.from(y), [batch.labels[4], batch.labels[17]]);
  for (const [i, r] of [[0, 4], [1, 17]]) {
    for (let p = 0; p < PIXELS; p += 97) {
      assert.equal(x[i * PIXELS + p], Math.fround(batch.images[r * PIXELS + p] / 255));
    }
  }
});

test("before the first step, optimizerState() holds no Adam moments on either engine", async () => {
  for (const { e } of [tfjs, ort]) {
    const fresh = await e.optimizerState(false);
    assert.equal(fresh.groups.optimizer.length, 0);
    assert.equal(fresh.groups.adam_beta_powers.length, 2);
    fresh.release();
  }
});

test("the tfjs and onnxruntime engines take the same steps on the same batch and seed", async () => {
  const { x, y } = inputs();
  for (let step = 0; step < 3; step++) {
    const before = tf.memory().numTensors;
    const pa = await tfjs.e.step(x, y, stepSeed(cfg.seed, step));
    // The first step creates Adam's moments; every later one must leave the count as it was.
    if (step > 0) assert.equal(tf.memory().numTensors, before, `tfjs step ${step} leaks`);
    const pb = await ort.e.step(x, y, stepSeed(cfg.seed, step));
    const [total, rec, kl, ce, hits] = pa;
    assert.ok(Math.abs(total - (rec + kl + cfg.classWeight * ce)) < 1e-3 * total, `total ${pa}`);
    assert.ok(hits >= 0 && hits <= B && Number.isInteger(hits), `hits ${hits}`);
    pa.forEach((v, i) =>
      assert.ok(Math.abs(v - pb[i]) <= 1e-4 * Math.max(1, Math.abs(v)), `part ${i}: ${pa} vs ${pb}`)
    );
  }
  ort.e.sync();
  const wa = weights(tfjs.m), wb = weights(ort.m);
  const diff = wa.reduce((d, w, i) => Math.max(d, Math.abs(w - wb[i])), 0);
  assert.ok(diff < 1e-5, `weights after 3 steps differ by ${diff}`);
});

test("after a step, optimizerState() holds iter and Adam's moments; release frees what it made", async () => {
  for (const [kind, { e, m }] of [["tfjs", tfjs], ["ort", ort]] as const) {
    const vars = [m.encoder, m.decoder, m.head!].flatMap((s) => s.trainableWeights).length;
    const before = tf.memory().numTensors;
    const state = await e.optimizerState(true);
    const names = state.groups.optimizer.map((w) => w.name);
    assert.equal(names[0], "iter", kind);
    assert.equal(names.length, 1 + 2 * vars, `${kind}: iter and two moments per variable`);
    state.release();
    assert.equal(tf.memory().numTensors, before, `${kind}: release frees what it made`);
  }
});
