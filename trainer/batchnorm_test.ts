/**
 * The encoder's batch-norm option (VaeConfig.batchNorm) in the model and the training loop:
 * off leaves the encoder as it was (layers, names, seeded weights), on adds conv -> BN -> relu;
 * tfjs training steps use batch statistics and move the moving statistics, checkpoints carry
 * them so a resume is bit-identical, and the onnxruntime engine refuses the model ("auto" falls
 * back to tfjs, saying so). Export parity is in export/batchnorm_test.ts.
 *
 *   node --import tsx --test trainer/batchnorm_test.ts
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { normalizePixels } from "../common/preprocess.ts";
import { loadFashionMnist, stratifiedSubset } from "./data.ts";
import { plannedEngine, startOrtEngine } from "./engine/choice.ts";
import { initEngine } from "./engine/tfjs_backend.ts";
import { buildDecoder, buildEncoder, TINY_VAE, vaeConfig } from "./model.ts";
import { type TrainConfig, trainVae } from "./train.ts";

const BN_VAE = vaeConfig({ batchNorm: true }, TINY_VAE);
const data = loadFashionMnist();
const small = stratifiedSubset(data.train, 128, 4);
const cfg: TrainConfig = {
  vae: BN_VAE,
  head: null,
  classWeight: 0,
  epochs: 2,
  batchSize: 32,
  learningRate: 3e-3,
  seed: 5,
};

before(async () => {
  await initEngine({ log: () => {} });
});

function values(m: tf.LayersModel): Float32Array[] {
  return m.getWeights().map((t) => t.dataSync() as Float32Array);
}

function bnStats(m: tf.LayersModel): { mean: Float32Array[]; variance: Float32Array[] } {
  const of = (k: string) =>
    m.weights.filter((w) => w.originalName.endsWith(k)).map((w) =>
      w.read().dataSync() as Float32Array
    );
  return { mean: of("moving_mean"), variance: of("moving_variance") };
}

test("batchNorm false or absent builds today's encoder: same layers, configs and seeded weights", () => {
  const today = buildEncoder(TINY_VAE);
  const off = buildEncoder(vaeConfig({ batchNorm: false }, TINY_VAE));
  assert.equal("batchNorm" in TINY_VAE, false, "the default config does not carry the key");
  const names = ["enc_conv1", "enc_conv2", "enc_conv3", "enc_flatten", "enc_dense1", "enc_moments"];
  assert.deepEqual(today.layers.map((l) => l.name), names);
  assert.deepEqual(off.layers.map((l) => l.name), names);
  assert.deepEqual(off.layers.map((l) => l.getConfig()), today.layers.map((l) => l.getConfig()));
  assert.deepEqual(values(off), values(today));
  const conv1 = today.layers[0].getConfig();
  assert.equal(conv1.activation, "relu");
  assert.equal(conv1.useBias, true);
});

test("batchNorm true: conv (no bias, linear) -> BN -> relu per conv; the same seeded kernels", () => {
  const enc = buildEncoder(BN_VAE);
  assert.deepEqual(enc.layers.map((l) => l.name), [
    ...[1, 2, 3].flatMap((i) => [`enc_conv${i}`, `enc_bn${i}`, `enc_relu${i}`]),
    "enc_flatten",
    "enc_dense1",
    "enc_moments",
  ]);
  const conv1 = enc.layers[0].getConfig();
  assert.equal(conv1.activation, "linear");
  assert.equal(conv1.useBias, false);
  // 3 convs: kernel; 3 BN: gamma, beta (trainable) + moving mean, variance; 2 dense: kernel, bias.
  assert.equal(enc.trainableWeights.length, 3 + 6 + 4);
  assert.equal(enc.nonTrainableWeights.length, 6);
  const plain = buildEncoder(TINY_VAE);
  assert.deepEqual(
    enc.layers[0].getWeights()[0].dataSync(),
    plain.layers[0].getWeights()[0].dataSync(),
  );
  assert.throws(
    () => vaeConfig({ batchNorm: "yes" as unknown as boolean }),
    /batchNorm must be true or false/,
  );
});

test("tfjs training uses batch statistics and moves the moving statistics; auto says it falls back", async () => {
  const lines: string[] = [];
  const fresh = bnStats(buildEncoder(BN_VAE));
  const { models } = await trainVae({ ...cfg, epochs: 1 }, small, {
    progress: false,
    engine: "auto",
    log: (s) => lines.push(s),
  });
  assert.ok(
    lines.some((l) => /engine auto: .*batch normalisation.*training with tfjs/.test(l)),
    lines.join("\n"),
  );
  const s = bnStats(models.encoder);
  assert.equal(s.mean.length, 3);
  // 4 steps at momentum 0.9 move each statistic ~34% of the way to the batch's.
  const moved = (a: Float32Array[], b: Float32Array[]) =>
    Math.max(...a.flatMap((x, i) => Array.from(x, (v, j) => Math.abs(v - b[i][j]))));
  assert.ok(moved(s.mean, fresh.mean) > 1e-3, `moving means moved ${moved(s.mean, fresh.mean)}`);
  assert.ok(
    moved(s.variance, fresh.variance) > 1e-3,
    `moving variances moved ${moved(s.variance, fresh.variance)}`,
  );
  // Training mode normalises with the batch's statistics, inference with the moving ones.
  const x = tf.tensor4d(new Float32Array(16 * 784).map((_, i) => (i % 97) / 97), [16, 28, 28, 1]);
  const train = models.encoder.apply(x, { training: false }) as tf.Tensor;
  const infer = models.encoder.predict(x) as tf.Tensor;
  assert.deepEqual(train.dataSync(), infer.dataSync(), "predict is inference mode");
  const inTraining = tf.tidy(() => models.encoder.apply(x, { training: true }) as tf.Tensor);
  const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(inTraining, infer))).dataSync()[0]);
  assert.ok(gap > 1e-3, `batch vs moving statistics gave outputs ${gap} apart`);
  tf.dispose([x, train, infer, inTraining]);
});

test("after ~80 steps the moving variances match the data's, not their initial 1", async () => {
  const { models } = await trainVae({ ...cfg, batchSize: 8, epochs: 5 }, small, {
    progress: false,
    log: () => {},
  });
  // Each BN layer's input on the training images, at the final weights (inference mode).
  const enc = models.encoder;
  let h: tf.Tensor = tf.tensor4d(normalizePixels(small.images), [small.count, 28, 28, 1]);
  const ratios: number[] = [];
  for (const layer of enc.layers) {
    if (layer.getClassName() === "BatchNormalization") {
      const actual = tf.tidy(() => tf.moments(h, [0, 1, 2]).variance.dataSync());
      const moving = layer.getWeights()[3].dataSync();
      actual.forEach((v, c) => ratios.push(moving[c] / v));
    }
    const next = layer.apply(h) as tf.Tensor;
    h.dispose();
    h = next;
  }
  h.dispose();
  // Keras's momentum 0.99 would still hold 0.99^80 = 45% of the initial variance 1 here.
  assert.equal(ratios.length, 4 + 8 + 8);
  const worst = Math.max(...ratios.map((r) => Math.max(r, 1 / r)));
  assert.ok(worst < 2, `moving / actual variance ratios ${ratios.map((r) => r.toFixed(2))}`);
});

test("checkpoints carry the moving statistics: an interrupted BN run resumes bit-identically", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bn-ckpt-"));
  try {
    const ck = join(dir, "checkpoint.bin");
    const straight = await trainVae(cfg, small, { progress: false });
    let steps = 0;
    const part = await trainVae(cfg, small, {
      progress: false,
      checkpointPath: ck,
      log: () => {},
      shouldStop: () => steps++ >= 4 + 2,
    });
    assert.equal(part.stopped, true);
    const resumed = await trainVae({ ...cfg, vae: TINY_VAE }, small, {
      progress: false,
      resumeFrom: ck,
      log: () => {},
    });
    assert.equal(resumed.config.vae.batchNorm, true, "the checkpoint's config wins");
    assert.deepEqual(values(resumed.models.encoder), values(straight.models.encoder));
    assert.deepEqual(values(resumed.models.decoder), values(straight.models.decoder));
    assert.deepEqual(bnStats(resumed.models.encoder), bnStats(straight.models.encoder));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--engine ort refuses a BN encoder with the reason; auto plans tfjs for it and ort otherwise", async () => {
  const models = { encoder: buildEncoder(BN_VAE), decoder: buildDecoder(BN_VAE), head: null };
  const run = { vae: BN_VAE, head: null, batchSize: 32, learningRate: 1e-3, classWeight: 0 };
  await assert.rejects(
    startOrtEngine("ort", run, models, tf.train.adam(1e-3), { log: () => {} }),
    /--engine ort cannot train this model: the encoder has batch normalisation.*--engine tfjs/,
  );
  assert.equal(plannedEngine("auto", BN_VAE), "tfjs");
  assert.equal(plannedEngine("auto", TINY_VAE), "auto");
  assert.equal(plannedEngine("ort", BN_VAE), "ort");
});
