/**
 * Batch norm at export (_batchnorm.ts): folded into the Conv2D / Dense before it, the serving
 * graph has no BatchNormalization op and matches tfjs inference (moving statistics) within
 * 1e-4 on 256 real test images, after real training steps and with every BN parameter set to
 * seeded random values (small variances, so a wrong epsilon or a wrong channel shows); a
 * trained BN model writes a bundle (writeBundle's own parity check) that the int8 quantizer
 * accepts; what cannot be folded is refused with the layer's name.
 *
 *   node --import tsx --test trainer/export/batchnorm_test.ts
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import * as ort from "onnxruntime-node";
import pkg from "onnx-proto";
import { normalizePixels } from "../../common/preprocess.ts";
import { writeBundle } from "../bundle.ts";
import { loadFashionMnist, type Split, stratifiedSubset, take } from "../data.ts";
import { initEngine } from "../engine/tfjs_backend.ts";
import { type HeadConfig, TINY_VAE, vaeConfig } from "../model.ts";
import { addInt8 } from "../quantize.ts";
import { trainVae, type VaeModels } from "../train.ts";
import { exportPixelClassifier, exportServingModel } from "./onnx.ts";

const TOL = 1e-4;
const N = 256;
const BN_VAE = vaeConfig({ batchNorm: true }, TINY_VAE);
const HEAD: HeadConfig = { kind: "mlp", hidden: [16], dropout: 0, seed: 7 };
const data = loadFashionMnist();
let test256: Split;
let x256: Float32Array;
let vae: VaeModels;

before(async () => {
  await initEngine({ log: () => {} });
  test256 = take(data.test, Array.from({ length: N }, (_, i) => i));
  x256 = normalizePixels(test256.images);
  const train = stratifiedSubset(data.train, 128, 3);
  ({ models: vae } = await trainVae(
    {
      vae: BN_VAE,
      head: HEAD,
      classWeight: 100,
      epochs: 1,
      batchSize: 32,
      learningRate: 3e-3,
      seed: 3,
    },
    train,
    { progress: false, log: () => {} },
  ));
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

async function runOrt(bytes: Uint8Array, x: Float32Array): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const out = await s.run({ image: new ort.Tensor("float32", x, [x.length / 784, 1, 28, 28]) });
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await s.release();
  }
}

function opsOf(bytes: Uint8Array): string[] {
  return pkg.onnx.ModelProto.decode(bytes).graph!.node!.map((n) => n.opType!);
}

/**
 * Serving graph vs tfjs predict (inference mode) on the 256 images: max |diff| of mu and logvar,
 * and the largest |value| (the scale float error is relative to).
 */
async function servingDiff(m: VaeModels) {
  const L = BN_VAE.latent;
  const bytes = exportServingModel(m.encoder, m.head!, L);
  const out = await runOrt(bytes, x256);
  const ref = tf.tidy(() => {
    const moments = m.encoder.predict(tf.tensor4d(x256, [N, 28, 28, 1])) as tf.Tensor2D;
    return [moments.slice([0, 0], [N, L]), moments.slice([0, L], [N, L])].map((t) =>
      t.dataSync() as Float32Array
    );
  });
  const scale = Math.max(...ref.flatMap((r) => Array.from(r, Math.abs)));
  return {
    mu: maxAbsDiff(out.mu, ref[0]),
    logvar: maxAbsDiff(out.logvar, ref[1]),
    scale,
    ops: opsOf(bytes),
  };
}

/** Sets every BN layer's gamma, beta, moving mean and variance to seeded random values. */
function randomizeBatchNorm(model: tf.LayersModel, seed: number): void {
  model.layers.filter((l) => l.getClassName() === "BatchNormalization").forEach((l, i) => {
    const c = l.getWeights()[0].shape;
    const ws = tf.tidy(() => [
      tf.randomUniform(c, 0.5, 2, "float32", seed + 10 * i),
      tf.randomNormal(c, 0, 0.5, "float32", seed + 10 * i + 1),
      tf.randomNormal(c, 0, 0.5, "float32", seed + 10 * i + 2),
      tf.randomUniform(c, 0.002, 0.05, "float32", seed + 10 * i + 3),
    ]);
    l.setWeights(ws);
    tf.dispose(ws);
  });
}

test("a trained BN encoder exports with BN folded into its convs: moments within 1e-4 of tfjs", async () => {
  const mean = vae.encoder.getLayer("enc_bn1").getWeights()[2].dataSync();
  assert.ok(mean.some((v) => Math.abs(v) > 1e-3), `moving mean still at its init: ${mean}`);
  const d = await servingDiff(vae);
  assert.ok(d.mu <= TOL && d.logvar <= TOL, JSON.stringify({ mu: d.mu, logvar: d.logvar }));
  assert.equal(d.ops.filter((o) => o === "BatchNormalization").length, 0);
  assert.equal(d.ops.filter((o) => o === "Conv").length, 3);
  process.stderr.write(`  trained BN serving: max abs diff mu ${d.mu}, logvar ${d.logvar}\n`);
});

test("folding is exact for arbitrary BN parameters (small variances) in a conv and a dense layer", async () => {
  const enc = vae.encoder;
  const saved = enc.getWeights().map((t) => t.clone());
  try {
    randomizeBatchNorm(enc, 41);
    const d = await servingDiff(vae);
    // Variances of a few thousandths blow the moments up: float32 error is relative to them.
    const tol = 1e-5 * Math.max(1, d.scale);
    assert.ok(d.mu <= tol && d.logvar <= tol, JSON.stringify({ ...d, ops: undefined, tol }));
    process.stderr.write(`  random BN: ${JSON.stringify({ ...d, ops: undefined })}\n`);
  } finally {
    enc.setWeights(saved);
    tf.dispose(saved);
  }
  // Dense -> BN, and a conv with its bias kept, through the pixel classifier path.
  const m = tf.sequential({ name: "bn_cnn" });
  m.add(
    tf.layers.conv2d({
      inputShape: [28, 28, 1],
      filters: 3,
      kernelSize: 3,
      strides: 2,
      padding: "same",
      name: "c1",
      biasInitializer: "randomNormal",
    }),
  );
  m.add(tf.layers.batchNormalization({ name: "bn1", epsilon: 0.01 }));
  m.add(tf.layers.activation({ activation: "relu", name: "r1" }));
  m.add(tf.layers.flatten({ name: "f" }));
  m.add(tf.layers.dense({ units: 6, name: "d1" }));
  m.add(tf.layers.batchNormalization({ name: "bn2" }));
  m.add(tf.layers.activation({ activation: "relu", name: "r2" }));
  m.add(tf.layers.dense({ units: 10, name: "logits" }));
  randomizeBatchNorm(m, 77);
  const out = await runOrt(exportPixelClassifier(m), x256);
  const ref = tf.tidy(() =>
    tf.softmax(m.predict(tf.tensor4d(x256, [N, 28, 28, 1])) as tf.Tensor2D)
      .dataSync() as Float32Array
  );
  const diff = maxAbsDiff(out.probabilities, ref);
  assert.ok(diff <= TOL, `pixel classifier with dense BN: max abs diff ${diff}`);
  m.dispose();
});

test("a trained BN model writes a bundle (parity-checked) that the int8 quantizer accepts", async () => {
  const root = await mkdtemp(join(tmpdir(), "bn-bundle-"));
  try {
    const dir = join(root, "bundle");
    const m = await writeBundle(dir, {
      name: "bn-test",
      encoder: vae.encoder,
      decoder: vae.decoder,
      head: vae.head!,
      vaeConfig: BN_VAE,
      headConfig: HEAD,
      training: { note: "4 steps" },
      fingerprint: data.fingerprint,
      test: take(data.test, Array.from({ length: 300 }, (_, i) => i)),
      latentMapPoints: 0,
      samplesPerClass: 0,
    });
    assert.ok((m.metrics.exportParityMaxAbsDiff as number) <= TOL);
    const calibration = { images: data.train.images.subarray(0, 300 * 784), count: 300 };
    const testSplit = take(data.test, Array.from({ length: 500 }, (_, i) => i));
    const q = await addInt8(dir, { calibration, calibrationSource: "first 300", test: testSplit });
    const r = q.int8!.metrics;
    process.stderr.write(`  BN bundle int8: ${JSON.stringify(r)}\n`);
    assert.ok((r.topLabelAgreementWithFp32 as number) >= 0.9, JSON.stringify(r));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("batch norm that cannot be folded is refused, naming the layer", () => {
  const after = (act: "relu" | "linear") => {
    const m = tf.sequential();
    m.add(
      tf.layers.conv2d({
        inputShape: [28, 28, 1],
        filters: 2,
        kernelSize: 3,
        activation: act,
        name: "c",
      }),
    );
    m.add(tf.layers.batchNormalization({ name: "bn" }));
    m.add(tf.layers.flatten());
    m.add(tf.layers.dense({ units: 10 }));
    return m;
  };
  assert.throws(
    () => exportPixelClassifier(after("relu")),
    /bn must follow a linear Conv2D or Dense.*c \(activation relu\)/,
  );
  assert.doesNotThrow(() => exportPixelClassifier(after("linear")));
  const m = tf.sequential();
  m.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
  m.add(tf.layers.batchNormalization({ name: "bn_flat" }));
  m.add(tf.layers.dense({ units: 10 }));
  assert.throws(() => exportPixelClassifier(m), /bn_flat must directly follow a Conv2D or Dense/);
});
