/**
 * Which images the regression gate scores on (trainer/gate_data.ts): an own-data bundle's
 * held-out.json images, found again in the dataset its manifest names; the first
 * data.evaluation.count Fashion-MNIST test images; and a clear refusal when the active version
 * records neither. The own-data bundle is an untrained tiny one on a made 3-class folder.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { readManifest } from "../bundle/mod.ts";
import { PIXELS } from "../common/labels.ts";
import { writeBundle } from "./bundle.ts";
import { loadFashionMnistTest } from "./data.ts";
import { loadTrainingData, type TrainingData } from "./datasets/mod.ts";
import { makeShapeFolder, SHAPE_CLASSES } from "./datasets/testdata/make_dataset.ts";
import { EvalDataError, evalSetDigest, evaluationSet } from "./gate_data.ts";
import { buildEncoder, buildHead, type HeadConfig, TINY_VAE } from "./model.ts";

const HEAD: HeadConfig = { kind: "logistic", hidden: [], dropout: 0, seed: 7, classes: 3 };
let work: string;
let data: TrainingData;
let bundle: string;
const env = { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME };

before(async () => {
  await tf.setBackend("cpu");
  work = await mkdtemp(join(tmpdir(), "gate-data-test-"));
  process.env.XDG_CACHE_HOME = join(work, "cache"); // the decode cache stays in the test's dir
  const made = makeShapeFolder(join(work, "shapes"), 20);
  const opts = { onBadImage: "skip" as const, minPerClass: 1, testFraction: 0.25, valFraction: 0 };
  data = await loadTrainingData(
    made.root,
    { ...opts, trainCount: 0, valCount: 0, seed: 3 },
    () => {},
  );
  bundle = join(work, "bundle");
  await writeBundle(bundle, {
    name: "shapes",
    encoder: buildEncoder(TINY_VAE),
    decoder: null,
    head: buildHead(TINY_VAE.latent, HEAD),
    vaeConfig: TINY_VAE,
    headConfig: HEAD,
    training: { note: "untrained" },
    test: data.test,
    labels: data.labels,
    heldOut: data.heldOut!,
    data: data.record,
    latentMapPoints: 0,
  });
});

after(async () => {
  if (env.XDG_CACHE_HOME === undefined) delete process.env.XDG_CACHE_HOME;
  else process.env.XDG_CACHE_HOME = env.XDG_CACHE_HOME;
  await rm(work, { recursive: true, force: true });
});

test("an own-data version is gated on its held-out.json images, found in its dataset", async () => {
  const m = await readManifest(bundle);
  const set = await evaluationSet(m, bundle);
  assert.deepEqual(set.labelNames, SHAPE_CLASSES);
  assert.equal(set.count, data.test.count);
  assert.ok(set.count >= 12, `${set.count} held-out test images`);
  assert.match(set.description, /held-out images of .* \(held-out\.json\)/);
  const expected = { ...data.test, labelNames: data.labels, source: "", description: "" };
  assert.equal(evalSetDigest(set), evalSetDigest(expected));
});

test("a Fashion-MNIST version is gated on its data.evaluation images; none is refused", async () => {
  const dir = join(work, "fm"); // holds no held-out.json
  const m = await readManifest(bundle);
  const fm = {
    ...m,
    labels: [],
    data: { dataset: "fashion-mnist", evaluation: { split: "test", count: 300 } },
  };
  const set = await evaluationSet(fm, dir, { images: 0 });
  const test10k = loadFashionMnistTest();
  assert.equal(set.count, 300);
  assert.deepEqual(set.images, test10k.images.subarray(0, 300 * PIXELS));
  assert.equal((await evaluationSet(fm, dir, { images: 120 })).count, 120);
  const bare = { ...m, data: {} };
  await assert.rejects(
    evaluationSet(bare, dir),
    (e: Error) =>
      e instanceof EvalDataError &&
      /records no held-out set .* pass --eval-data <dataset> .* or --force/.test(e.message),
  );
});
