import assert from "node:assert/strict";
import {
  normalizePixels,
  preprocess,
  PreprocessError,
  type RawImage,
  resizeArea,
  toBytes,
  toGrey,
} from "./preprocess.ts";

/** A 28x28 grey "garment": a bright rectangle on black, like a Fashion-MNIST image. */
function garment(): Uint8Array {
  const px = new Uint8Array(784);
  for (let y = 4; y < 24; y++) for (let x = 8; x < 20; x++) px[y * 28 + x] = 200;
  return px;
}

Deno.test("preprocess() uses a 28x28 grey image as is", () => {
  const px = garment();
  const out = preprocess({ width: 28, height: 28, channels: 1, data: px });
  assert.deepEqual(out, normalizePixels(px));
});

Deno.test("preprocess() treats a 28x28 RGB image with equal channels as grey", () => {
  const px = garment();
  const rgb = new Uint8Array(784 * 3);
  px.forEach((v, i) => rgb.fill(v, i * 3, i * 3 + 3));
  const out = preprocess({ width: 28, height: 28, channels: 3, data: rgb });
  assert.ok(out.every((v, i) => Math.abs(v - px[i] / 255) < 1e-6));
});

Deno.test("preprocess() turns a dark-on-white photo into a centred light-on-dark 28x28 image", () => {
  // 200x120 white photo, a dark 60x100 object off-centre: the recipe trims, fits the longest
  // edge (100 px) to 28, centres and inverts.
  const w = 200, h = 120;
  const data = new Uint8Array(w * h * 3).fill(255);
  for (let y = 10; y < 110; y++) {
    for (let x = 20; x < 80; x++) data.fill(30, (y * w + x) * 3, (y * w + x) * 3 + 3);
  }
  const out = preprocess({ width: w, height: h, channels: 3, data });
  assert.equal(out.length, 784);
  // The object spans all 28 rows and ~17 centred columns; the corners are black.
  const col = (x: number) => Array.from({ length: 28 }, (_, y) => out[y * 28 + x]);
  assert.ok(col(14).every((v) => v > 0.9), "centre column is object (bright)");
  assert.ok(out[0] < 0.01 && out[27] < 0.01 && out[783] < 0.01, "corners are background (dark)");
  const lit =
    Array.from({ length: 28 }, (_, x) => col(x).some((v) => v > 0.5)).filter(Boolean).length;
  assert.ok(lit >= 16 && lit <= 18, `object width ${lit} columns, expected ~17`);
});

Deno.test("preprocess() keeps a light-on-dark photo's polarity", () => {
  const w = 56, h = 56;
  const data = new Uint8Array(w * h);
  for (let y = 8; y < 48; y++) for (let x = 8; x < 48; x++) data[y * w + x] = 220;
  const out = preprocess({ width: w, height: h, channels: 1, data });
  // Trimmed to the 40x40 square, which then fills the canvas: bright everywhere.
  assert.ok(out.every((v) => v > 0.95), "object fills the canvas, light on dark");
});

Deno.test("preprocess() composites transparent pixels over white", () => {
  const data = new Uint8Array(28 * 28 * 4); // fully transparent black = white once flattened
  const g = toGrey({ width: 28, height: 28, channels: 4, data });
  assert.ok(g.every((v) => v === 255));
});

Deno.test("preprocess=none rejects an image that is not 28x28, naming the size", () => {
  const img: RawImage = { width: 30, height: 28, channels: 1, data: new Uint8Array(840) };
  assert.throws(
    () => preprocess(img, "none"),
    (e: unknown) =>
      e instanceof PreprocessError && /28x28 image, got 30x28/.test((e as Error).message),
  );
});

Deno.test("preprocess() rejects short pixel data", () => {
  assert.throws(
    () => preprocess({ width: 28, height: 28, channels: 3, data: new Uint8Array(784) }),
    /needs 2352/,
  );
});

Deno.test("resizeArea() preserves the mean and halves exactly", () => {
  const src = Float32Array.from({ length: 16 }, (_, i) => i);
  const half = resizeArea(src, 4, 4, 2, 2);
  assert.deepEqual(Array.from(half), [2.5, 4.5, 10.5, 12.5]);
  const odd = resizeArea(src, 4, 4, 3, 3);
  const mean = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;
  assert.ok(Math.abs(mean(odd) - mean(src)) < 1e-5);
});

Deno.test("toBytes() clamps and rounds", () => {
  assert.deepEqual(Array.from(toBytes([-1, 0, 0.5, 1, 2])), [0, 0, 128, 255, 255]);
});
