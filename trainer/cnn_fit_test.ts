import assert from "node:assert/strict";
import { before, test } from "node:test";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { accuracy, confusion, predict } from "./classifiers.ts";
import { CNN_FIT, cnnSteps, cosineRate, shiftInto, trainPixelCnn } from "./cnn_fit.ts";
import { loadFashionMnist, stratifiedSubset } from "./data.ts";
import { initEngine } from "./engine/tfjs_backend.ts";
import { TINY_CNN } from "./model_cnn.ts";

before(async () => {
  await initEngine({ log: () => {} });
});

test("cnnSteps(): epochs bounded by min and max steps", () => {
  const o = CNN_FIT;
  assert.equal(cnnSteps(100, o), o.minSteps);
  assert.equal(cnnSteps(60000, o), o.maxSteps);
  assert.equal(cnnSteps(10000, o), Math.ceil((o.epochs * 10000) / o.batchSize));
});

test("shiftInto() moves the image and fills with 0; cosineRate() decays from peak to 0", () => {
  const img = new Uint8Array(PIXELS);
  img[14 * IMAGE_SIZE + 14] = 255;
  img[0] = 255;
  const out = new Float32Array(PIXELS).fill(9);
  shiftInto(img, 0, 2, -1, out, 0);
  assert.equal(out[13 * IMAGE_SIZE + 16], 1);
  assert.equal(
    out.reduce((a, b) => a + b, 0),
    1,
    "the corner pixel moved off the canvas; the rest is 0",
  );
  assert.equal(cosineRate(1, 0, 10), 1);
  assert.ok(Math.abs(cosineRate(1, 5, 10) - 0.5) < 1e-12);
  assert.ok(cosineRate(1, 10, 10) < 1e-12);
});

test("trainPixelCnn() learns from 500 labelled images and runs the steps it says", async () => {
  const data = loadFashionMnist();
  const labelled = stratifiedSubset(data.train, 500, 2);
  const test_ = stratifiedSubset(data.test, 1000, 3);
  const o = { ...CNN_FIT, batchSize: 64, learningRate: 3e-3, minSteps: 150, maxSteps: 150 };
  const { model, steps } = await trainPixelCnn(TINY_CNN, labelled, o, "tfjs");
  assert.equal(steps, 150);
  const shape = [IMAGE_SIZE, IMAGE_SIZE, 1];
  const pred = predict(model, normalizePixels(test_.images), test_.count, shape);
  const acc = accuracy(pred, test_.labels);
  console.log(`tiny pixel CNN on 500 images: ${(acc * 100).toFixed(1)}%`);
  assert.ok(acc > 0.65, `cnn ${acc}`);
  const m = confusion(pred, test_.labels);
  assert.equal(m.flat().reduce((a, b) => a + b, 0), 1000);
  assert.equal(m.reduce((a, row, i) => a + row[i], 0), Math.round(acc * 1000));
  model.dispose();
});
