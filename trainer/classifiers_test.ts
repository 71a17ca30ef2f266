import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { accuracy, encodeMu, predict, trainHead } from "./classifiers.ts";
import { loadFashionMnist, stratifiedSubset } from "./data.ts";
import { initEngine } from "./engine/tfjs_backend.ts";
import { DEFAULT_HEAD, TINY_VAE } from "./model.ts";
import { trainVae } from "./train.ts";

const data = loadFashionMnist();
const unlabelled = stratifiedSubset(data.train, 2048, 1);
const labelled = stratifiedSubset(data.train, 500, 2);
const test_ = stratifiedSubset(data.test, 1000, 3);

before(async () => {
  await initEngine({ log: () => {} });
});

test("heads on a frozen tiny VAE's latent beat chance by far (logistic by SGD, MLP by Adam)", async () => {
  const { models } = await trainVae(
    {
      vae: { ...TINY_VAE },
      head: null,
      classWeight: 0,
      epochs: 4,
      batchSize: 64,
      learningRate: 3e-3,
      seed: 1,
    },
    unlabelled,
    { progress: false },
  );
  const L = TINY_VAE.latent;
  const muTrain = encodeMu(models.encoder, L, labelled);
  const muTest = encodeMu(models.encoder, L, test_);
  const before = tf.memory().numTensors;
  const logistic = trainHead(
    { ...DEFAULT_HEAD, kind: "logistic" },
    L,
    muTrain,
    labelled.labels,
    labelled.count,
  );
  const mlp = trainHead(
    { ...DEFAULT_HEAD, hidden: [32] },
    L,
    muTrain,
    labelled.labels,
    labelled.count,
  );
  const accLog = accuracy(predict(logistic, muTest, test_.count, [L]), test_.labels);
  const accMlp = accuracy(predict(mlp, muTest, test_.count, [L]), test_.labels);
  console.log(
    `tiny VAE (L=2) + logistic: ${(accLog * 100).toFixed(1)}%, + MLP: ${
      (accMlp * 100).toFixed(1)
    }% on 1000 test images`,
  );
  // Chance is 10%; a 2-D latent of a briefly trained VAE separates trousers, bags, shoes.
  assert.ok(accLog > 0.35, `logistic ${accLog}`);
  assert.ok(accMlp > 0.4, `mlp ${accMlp}`);
  // Only the heads' own weights stay alive after training.
  assert.equal(tf.memory().numTensors - before, logistic.weights.length + mlp.weights.length);
});
