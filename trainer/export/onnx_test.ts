/**
 * Parity tests of the ONNX exporter: each exported graph, run by onnxruntime-node on 256 real
 * Fashion-MNIST test images, must match the tfjs cpu outputs of the source model within 1e-4
 * (max abs diff) with identical argmax; every file must also load in onnxruntime-web and give
 * the same outputs with graph optimisation 'all' and 'disabled'. The models are the TINY
 * configs after a few real training steps, with biases then set to seeded random values so a
 * bias laid out in the wrong order cannot hide behind zeros. A second group exports unusual
 * layer arrangements (even kernels, valid padding, strides 3, Flatten/Reshape without an
 * adjacent Dense) to exercise the generic paths.
 *
 *   node --import tsx --test trainer/export/onnx_test.ts
 */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web";
import { normalizePixels } from "../../common/preprocess.ts";
import { loadFashionMnist, type Split, stratifiedSubset, take } from "../data.ts";
import { type HeadConfig, TINY_VAE } from "../model.ts";
import { buildPixelCnn, TINY_CNN } from "../model_cnn.ts";
import { trainVae, type VaeModels } from "../train.ts";
import { exportDecoder, exportPixelClassifier, exportServingModel } from "./onnx.ts";

/** Stated tolerance: float32 graphs of this size differ by ~1e-6 between runtimes. */
const TOL = 1e-4;
const N = 256;
const HEAD: HeadConfig = { kind: "mlp", hidden: [16, 8], dropout: 0.2, seed: 7 };

let test256: Split;
let x256: Float32Array; // NHWC with C = 1 holds the same bytes as NCHW
let vae: VaeModels;

ortWeb.env.wasm.numThreads = 1;

/** Seeded random biases: a zero bias is invariant to any permutation error. */
function randomizeBiases(model: tf.LayersModel, seed: number): void {
  model.layers.forEach((layer, i) => {
    const ws = layer.getWeights();
    if (ws.length < 2) return;
    const bias = tf.randomNormal(ws[1].shape, 0, 0.2, "float32", seed + i);
    layer.setWeights([ws[0], bias]);
    bias.dispose();
  });
}

before(async () => {
  await tf.setBackend("cpu");
  const data = loadFashionMnist();
  test256 = take(data.test, Array.from({ length: N }, (_, i) => i));
  x256 = normalizePixels(test256.images);
  // A few real Adam steps of the joint VAE + head (about 5 s on the cpu backend).
  const train = stratifiedSubset(data.train, 96, 3);
  ({ models: vae } = await trainVae(
    {
      vae: TINY_VAE,
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
  randomizeBiases(vae.encoder, 100);
  randomizeBiases(vae.decoder, 200);
  randomizeBiases(vae.head!, 300);
});

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, "output sizes differ");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function argmaxRows(a: Float32Array, k: number): Int32Array {
  const out = new Int32Array(a.length / k);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let j = 1; j < k; j++) if (a[r * k + j] > a[r * k + best]) best = j;
    out[r] = best;
  }
  return out;
}

function tfjsData(t: tf.Tensor): Float32Array {
  const d = t.dataSync() as Float32Array;
  t.dispose();
  return d;
}

async function runNode(
  bytes: Uint8Array,
  feeds: Record<string, { data: Float32Array; dims: number[] }>,
): Promise<Record<string, Float32Array>> {
  const s = await ortNode.InferenceSession.create(bytes);
  try {
    const inputs = Object.fromEntries(
      Object.entries(feeds).map(([k, v]) => [k, new ortNode.Tensor("float32", v.data, v.dims)]),
    );
    const out = await s.run(inputs);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array]));
  } finally {
    await s.release();
  }
}

/** onnxruntime-web (wasm) with optimisation 'all' and 'disabled' must agree with each other and with onnxruntime-node. */
async function checkWeb(
  bytes: Uint8Array,
  feeds: Record<string, { data: Float32Array; dims: number[] }>,
  reference: Record<string, Float32Array>,
): Promise<number> {
  let worst = 0;
  const results: Record<string, Float32Array>[] = [];
  for (const level of ["all", "disabled"] as const) {
    const s = await ortWeb.InferenceSession.create(bytes, {
      graphOptimizationLevel: level,
      executionProviders: ["wasm"],
    });
    try {
      const inputs = Object.fromEntries(
        Object.entries(feeds).map(([k, v]) => [k, new ortWeb.Tensor("float32", v.data, v.dims)]),
      );
      const out = await s.run(inputs);
      results.push(
        Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.data as Float32Array])),
      );
    } finally {
      await s.release();
    }
  }
  for (const name of Object.keys(reference)) {
    const a = maxAbsDiff(results[0][name], results[1][name]);
    const b = maxAbsDiff(results[0][name], reference[name]);
    assert.ok(a <= 1e-5, `onnxruntime-web ${name}: 'all' vs 'disabled' differ by ${a}`);
    assert.ok(b <= TOL, `onnxruntime-web vs onnxruntime-node ${name}: differ by ${b}`);
    worst = Math.max(worst, a, b);
  }
  return worst;
}

const log = (s: string) => process.stderr.write(`  ${s}\n`);

test("exportServingModel() matches tfjs on 256 test images: probabilities, mu, logvar, argmax", async () => {
  const L = TINY_VAE.latent;
  const before = tf.memory().numTensors;
  const t0 = performance.now();
  const bytes = exportServingModel(vae.encoder, vae.head!, L);
  const ms = performance.now() - t0;
  assert.equal(tf.memory().numTensors, before, "export leaked tensors");
  assert.ok(ms < 5000, `export took ${ms} ms`);

  const x = tf.tensor4d(x256, [N, 28, 28, 1]);
  const moments = vae.encoder.predict(x) as tf.Tensor2D;
  const mu = moments.slice([0, 0], [N, L]);
  const ref = {
    logvar: tfjsData(moments.slice([0, L], [N, L])),
    probabilities: tfjsData(tf.softmax(vae.head!.predict(mu) as tf.Tensor2D)),
    mu: tfjsData(mu),
  };
  x.dispose();
  moments.dispose();

  const feeds = { image: { data: x256, dims: [N, 1, 28, 28] } };
  const out = await runNode(bytes, feeds);
  const diffs = Object.fromEntries(
    Object.keys(ref).map((k) => [k, maxAbsDiff(out[k], ref[k as keyof typeof ref])]),
  );
  for (const [k, d] of Object.entries(diffs)) {
    assert.ok(d <= TOL, `${k}: max abs diff ${d} > ${TOL}`);
  }
  assert.deepEqual(argmaxRows(out.probabilities, 10), argmaxRows(ref.probabilities, 10));
  const web = await checkWeb(bytes, feeds, out);
  log(
    `serving: ${bytes.length} bytes, export ${ms.toFixed(0)} ms; max abs diff vs tfjs ${
      JSON.stringify(diffs)
    }; web ${web}`,
  );
});

test("exportDecoder() matches tfjs sigmoid(decoder(z)) on the mu of 256 test images", async () => {
  const L = TINY_VAE.latent;
  const bytes = exportDecoder(vae.decoder, L);
  const z = tf.tidy(() =>
    (vae.encoder.predict(tf.tensor4d(x256, [N, 28, 28, 1])) as tf.Tensor2D).slice([0, 0], [N, L])
  );
  const zData = z.dataSync() as Float32Array;
  const ref = tfjsData(tf.tidy(() => tf.sigmoid(vae.decoder.predict(z) as tf.Tensor)));
  z.dispose();
  const feeds = { z: { data: zData, dims: [N, L] } };
  const out = await runNode(bytes, feeds);
  const d = maxAbsDiff(out.pixels, ref);
  assert.ok(d <= TOL, `pixels: max abs diff ${d}`);
  const web = await checkWeb(bytes, feeds, out);
  log(`decoder: ${bytes.length} bytes; pixels max abs diff vs tfjs ${d}; web ${web}`);
});

test("exportPixelClassifier() matches tfjs softmax(cnn(x)) on 256 test images", async () => {
  const cnn = buildPixelCnn({ ...TINY_CNN, dropout: 0.3 });
  randomizeBiases(cnn, 400);
  await checkClassifier(cnn, "pixel CNN");
  cnn.dispose();
});

async function checkClassifier(model: tf.Sequential, what: string): Promise<void> {
  const bytes = exportPixelClassifier(model);
  const ref = tfjsData(
    tf.tidy(() => tf.softmax(model.predict(tf.tensor4d(x256, [N, 28, 28, 1])) as tf.Tensor2D)),
  );
  const feeds = { image: { data: x256, dims: [N, 1, 28, 28] } };
  const out = await runNode(bytes, feeds);
  const d = maxAbsDiff(out.probabilities, ref);
  assert.ok(d <= TOL, `${what} probabilities: max abs diff ${d}`);
  assert.deepEqual(argmaxRows(out.probabilities, 10), argmaxRows(ref, 10));
  const web = await checkWeb(bytes, feeds, out);
  log(`${what}: ${bytes.length} bytes; max abs diff vs tfjs ${d}; web ${web}`);
}

const glorot = (seed: number) => tf.initializers.glorotUniform({ seed });

test("unusual classifiers: strides 3, even kernels, valid padding, channel softmax, Flatten without a Dense", async () => {
  const a = tf.sequential();
  a.add(
    tf.layers.conv2d({
      inputShape: [28, 28, 1],
      filters: 3,
      kernelSize: 5,
      strides: 3,
      padding: "same",
      activation: "tanh",
      kernelInitializer: glorot(1),
    }),
  ); // 28 -> 10
  a.add(
    tf.layers.conv2d({
      filters: 5,
      kernelSize: 4,
      strides: 2,
      padding: "same",
      activation: "softmax",
      kernelInitializer: glorot(2),
    }),
  ); // 10 -> 5, softmax over channels
  a.add(
    tf.layers.conv2d({
      filters: 6,
      kernelSize: 2,
      strides: 1,
      padding: "valid",
      kernelInitializer: glorot(3),
    }),
  ); // 5 -> 4
  a.add(tf.layers.flatten());
  a.add(tf.layers.activation({ activation: "relu" })); // between Flatten and Dense: the fold must survive it
  a.add(tf.layers.dropout({ rate: 0.5 }));
  a.add(tf.layers.dense({ units: 10, kernelInitializer: glorot(4) }));
  randomizeBiases(a, 500);
  await checkClassifier(a, "strided/even-kernel classifier");

  const b = tf.sequential();
  b.add(
    tf.layers.conv2d({
      inputShape: [28, 28, 1],
      filters: 4,
      kernelSize: 3,
      strides: 2,
      padding: "same",
      activation: "relu",
      kernelInitializer: glorot(5),
    }),
  ); // 28 -> 14
  b.add(
    tf.layers.conv2d({
      filters: 10,
      kernelSize: 7,
      strides: 7,
      padding: "valid",
      kernelInitializer: glorot(6),
    }),
  ); // 14 -> 2
  b.add(
    tf.layers.conv2d({
      filters: 10,
      kernelSize: 2,
      padding: "valid",
      kernelInitializer: glorot(7),
    }),
  ); // 2 -> 1
  b.add(tf.layers.flatten()); // no Dense follows: exported with an explicit Transpose
  randomizeBiases(b, 600);
  await checkClassifier(b, "Flatten-ended classifier");
  a.dispose();
  b.dispose();
});

test("unusual decoders: Reshape without a Dense, even and valid transposed convs", async () => {
  const L = 49;
  const d = tf.sequential();
  d.add(tf.layers.reshape({ inputShape: [L], targetShape: [7, 7, 1] })); // exported as Reshape NHWC + Transpose
  d.add(
    tf.layers.conv2dTranspose({
      filters: 3,
      kernelSize: 4,
      strides: 2,
      padding: "same",
      activation: "relu",
      kernelInitializer: glorot(8),
    }),
  ); // 7 -> 14
  d.add(
    tf.layers.conv2dTranspose({
      filters: 2,
      kernelSize: 2,
      strides: 2,
      padding: "valid",
      activation: "sigmoid",
      kernelInitializer: glorot(9),
    }),
  ); // 14 -> 28
  d.add(
    tf.layers.conv2dTranspose({
      filters: 1,
      kernelSize: 5,
      strides: 1,
      padding: "same",
      kernelInitializer: glorot(10),
    }),
  ); // 28 -> 28
  randomizeBiases(d, 700);
  const z = tf.randomNormal([N, L], 0, 1, "float32", 11);
  const zData = z.dataSync() as Float32Array;
  const ref = tfjsData(tf.tidy(() => tf.sigmoid(d.predict(z) as tf.Tensor)));
  z.dispose();
  const bytes = exportDecoder(d, L);
  const feeds = { z: { data: zData, dims: [N, L] } };
  const out = await runNode(bytes, feeds);
  const diff = maxAbsDiff(out.pixels, ref);
  assert.ok(diff <= TOL, `pixels: max abs diff ${diff}`);
  await checkWeb(bytes, feeds, out);

  // valid padding with kernel > stride adds k - s pixels: 13 -> (13-1)*2 + 4 = 28.
  const e = tf.sequential();
  e.add(tf.layers.dense({ inputShape: [3], units: 13 * 13 * 2, kernelInitializer: glorot(12) }));
  e.add(tf.layers.reshape({ targetShape: [13, 13, 2] }));
  e.add(
    tf.layers.conv2dTranspose({
      filters: 1,
      kernelSize: 4,
      strides: 2,
      padding: "valid",
      kernelInitializer: glorot(13),
    }),
  );
  randomizeBiases(e, 800);
  const z3 = tf.randomNormal([N, 3], 0, 1, "float32", 14);
  const z3Data = z3.dataSync() as Float32Array;
  const ref3 = tfjsData(tf.tidy(() => tf.sigmoid(e.predict(z3) as tf.Tensor)));
  z3.dispose();
  const out3 = await runNode(exportDecoder(e, 3), { z: { data: z3Data, dims: [N, 3] } });
  const diff3 = maxAbsDiff(out3.pixels, ref3);
  assert.ok(diff3 <= TOL, `valid transposed conv pixels: max abs diff ${diff3}`);
  log(`unusual decoders: max abs diff ${diff}, ${diff3}`);
  d.dispose();
  e.dispose();
});

test("export rejects what it cannot represent, saying which layer and why", () => {
  const pool = tf.sequential();
  pool.add(tf.layers.maxPooling2d({ inputShape: [28, 28, 1], poolSize: 2 }));
  pool.add(tf.layers.flatten());
  pool.add(tf.layers.dense({ units: 10 }));
  assert.throws(
    () => exportPixelClassifier(pool),
    /layer max_pooling2d\w* of type MaxPooling2D is not supported/,
  );
  const soft = tf.sequential();
  soft.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
  soft.add(tf.layers.dense({ units: 10, activation: "softmax" }));
  assert.throws(() => exportPixelClassifier(soft), /must output logits/);
  assert.throws(
    () => exportServingModel(vae.encoder, vae.head!, 3),
    /head input has shape \[2\], expected \[3\]/,
  );
  pool.dispose();
  soft.dispose();
});
