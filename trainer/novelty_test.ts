/**
 * Calibration at export on the committed tiny bundle and real training images: the manifest
 * gains a valid `novelty` section, the ONNX files and the version stay, a re-run writes the
 * same bytes, the threshold flags about the calibrated share of unseen test images and most
 * noise; a bundle trained with a validation split is calibrated on that split.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import {
  bundleFile,
  encodeSet,
  type Manifest,
  noveltyFeatures,
  noveltyScorer,
  readManifest,
  scoreRows,
  servingNames,
} from "../bundle/mod.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { loadFashionMnist, stratifiedSubset, take } from "./data.ts";
import { calibrateBundle, calibrationSplit } from "./novelty.ts";
import { graphOfSession } from "./ort_node.ts";
import { uniformNoise } from "./ood_sets.ts";

const TINY = fileURLToPath(new URL("../tests/testdata/tiny-bundle", import.meta.url));
const data = loadFashionMnist();

async function flagged(dir: string, m: Manifest, images: Uint8Array, n: number): Promise<number> {
  const s = graphOfSession(await ort.InferenceSession.create(bundleFile(dir, m, "model")));
  const out = await encodeSet(s, servingNames(m), images, n);
  await s.release();
  const cal = m.novelty!;
  const x = noveltyFeatures(
    cal.features,
    { ...out, images: normalizePixels(images) },
    n,
    m.latentSize,
  );
  return scoreRows(noveltyScorer(cal), x, n).filter((v) => v > cal.threshold.score).length / n;
}

test("calibrateBundle() adds a valid, reproducible novelty section and leaves the graphs alone", async () => {
  const dir = await mkdtemp(join(tmpdir(), "novelty-cal-"));
  try {
    await cp(TINY, dir, { recursive: true });
    const before = await readManifest(dir);
    const train = stratifiedSubset(data.train, 4000, 3);
    const cal = await calibrateBundle(dir, train, { heldOutCount: 1000 });
    const first = await readFile(join(dir, "manifest.json"), "utf8");
    const m = await readManifest(dir);
    assert.equal(m.version, before.version);
    assert.deepEqual(m.files, before.files);
    assert.equal(cal.heldOut.images, 1000);
    assert.equal(cal.fit.images, 3000);
    assert.equal(cal.threshold.percentile, 95);
    await calibrateBundle(dir, train, { heldOutCount: 1000 });
    assert.equal(
      await readFile(join(dir, "manifest.json"), "utf8"),
      first,
      "re-run must be a no-op",
    );

    const unseen = take(data.test, Array.from({ length: 2000 }, (_, i) => i));
    const inRate = await flagged(dir, m, unseen.images, unseen.count);
    assert.ok(inRate > 0.02 && inRate < 0.1, `flagged ${inRate} of unseen test images`);
    const noise = uniformNoise(200, 4);
    assert.ok(await flagged(dir, m, noise.images, noise.count) > 0.95);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("calibrationSplit() uses the bundle's own validation split when it was trained with one", async () => {
  const m = await readManifest(TINY);
  const train = stratifiedSubset(data.train, 2000, 1);
  const own = calibrationSplit(
    { ...m, training: { ...m.training, seed: 4, data: { valCount: 300, trainCount: 0 } } },
    train,
  );
  assert.equal(own.heldOut.count, 300);
  assert.match(own.heldOutSource, /unseen in training/);
  const other = calibrationSplit({ ...m, training: {} }, train, 500);
  assert.equal(other.heldOut.count, 500);
  assert.equal(other.fit.count, 1500);
});
