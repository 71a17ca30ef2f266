import assert from "node:assert/strict";
import { test } from "node:test";
import { PIXELS } from "../common/labels.ts";
import {
  blankImages,
  inverted,
  loadMnistDigits,
  rotated90,
  slice,
  uniformNoise,
} from "./ood_sets.ts";

test("loadMnistDigits() reads the package's 10,000 digits, light on dark, every class", () => {
  const d = loadMnistDigits();
  assert.equal(d.count, 10000);
  assert.equal(d.images.length, 10000 * PIXELS);
  assert.deepEqual([...new Set(d.labels)].sort(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const first = slice(d, 0, 1).images;
  assert.equal(first[0], 0); // dark corner
  assert.ok(Math.max(...first) > 200); // a light stroke
});

test("loadMnistDigits() names the file it cannot read", () => {
  assert.throws(
    () => loadMnistDigits("/nonexistent-digits"),
    /Cannot read MNIST digits \/nonexistent-digits\/0\.json/,
  );
});

test("rotated90() four times and inverted() twice give the images back", () => {
  const s = uniformNoise(3, 7);
  let r = s;
  for (let i = 0; i < 4; i++) r = rotated90(r);
  assert.deepEqual(r.images, s.images);
  assert.deepEqual(inverted(inverted(s)).images, s.images);
  // One rotation moves the top-left pixel to the top-right corner.
  assert.equal(rotated90(s).images[27], s.images[0]);
});

test("blankImages() spans black to white, one grey level per image", () => {
  const b = blankImages(256);
  assert.equal(b.images[0], 0);
  assert.equal(b.images[255 * PIXELS + 100], 255);
  assert.equal(new Set(b.images.subarray(7 * PIXELS, 8 * PIXELS)).size, 1);
});
