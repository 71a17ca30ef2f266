import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { decodeProbePixels, readManifest, SAMPLES_FILE, validateSamples } from "../bundle/mod.ts";
import { PIXELS } from "../common/labels.ts";
import { addSamples } from "./bundle_samples.ts";
import { loadFashionMnist, take } from "./data.ts";

const TINY = new URL("../tests/testdata/tiny-bundle", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "bundle-samples-"));
after(() => rmSync(work, { recursive: true, force: true }));

test("addSamples() adds the first images of each class, keeps the version, and is idempotent", async () => {
  const dir = join(work, "b");
  cpSync(TINY, dir, { recursive: true });
  const before = await readManifest(dir);
  const test300 = take(loadFashionMnist().test, Array.from({ length: 300 }, (_, i) => i));
  await addSamples(dir, test300, 2);
  const once = readFileSync(join(dir, SAMPLES_FILE));
  const manifestOnce = readFileSync(join(dir, "manifest.json"));
  await addSamples(dir, test300, 2);
  assert.deepEqual(readFileSync(join(dir, SAMPLES_FILE)), once, "same samples.json bytes");
  assert.deepEqual(readFileSync(join(dir, "manifest.json")), manifestOnce, "same manifest bytes");
  const after = await readManifest(dir);
  assert.equal(after.version, before.version);
  assert.equal(after.files.filter((f) => f.role === "samples").length, 1);
  const set = validateSamples(JSON.parse(once.toString()), after.labels.length);
  assert.deepEqual(set.samples.map((s) => s.label), [
    0,
    0,
    1,
    1,
    2,
    2,
    3,
    3,
    4,
    4,
    5,
    5,
    6,
    6,
    7,
    7,
    8,
    8,
    9,
    9,
  ]);
  // The first sample is the first test image of class 0, byte for byte.
  const first = test300.labels.indexOf(0);
  assert.deepEqual(
    decodeProbePixels(set.samples[0].pixels),
    test300.images.subarray(first * PIXELS, (first + 1) * PIXELS),
  );
});
