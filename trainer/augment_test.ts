import assert from "node:assert/strict";
import { test } from "node:test";
import { mulberry32 } from "../common/random.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { parseFlags } from "../common/flags.ts";
import {
  AUGMENT_FLAGS,
  augmentBatch,
  augmentInto,
  augmentOf,
  draw,
  NO_AUGMENT,
  validateAugment,
} from "./augment.ts";

function ramp(): Float32Array {
  const x = new Float32Array(PIXELS);
  for (let i = 0; i < PIXELS; i++) x[i] = ((i * 37) % 256) / 255;
  return x;
}

const IDENTITY = { dx: 0, dy: 0, mirror: false, scale: 1, gain: 1 };

test("augmentInto() with the identity draw copies the image exactly", () => {
  const x = ramp();
  const out = new Float32Array(PIXELS);
  augmentInto(x, IDENTITY, out, 0);
  assert.deepEqual(out, x);
});

test("a whole-pixel shift moves pixels and fills with 0; a mirror reverses each row", () => {
  const x = ramp();
  const out = new Float32Array(PIXELS);
  augmentInto(x, { ...IDENTITY, dx: 2, dy: -1 }, out, 0);
  for (let y = 0; y < IMAGE_SIZE; y++) {
    for (let c = 0; c < IMAGE_SIZE; c++) {
      const sy = y + 1, sc = c - 2;
      const want = sy >= IMAGE_SIZE || sc < 0 ? 0 : x[sy * IMAGE_SIZE + sc];
      assert.equal(out[y * IMAGE_SIZE + c], want, `pixel (${c}, ${y})`);
    }
  }
  augmentInto(x, { ...IDENTITY, mirror: true }, out, 0);
  for (let y = 0; y < IMAGE_SIZE; y++) {
    for (let c = 0; c < IMAGE_SIZE; c++) {
      assert.equal(out[y * IMAGE_SIZE + c], x[y * IMAGE_SIZE + IMAGE_SIZE - 1 - c]);
    }
  }
});

test("contrast gain scales and clips to 1; a smaller scale keeps the centre and darkens the rim", () => {
  const x = new Float32Array(PIXELS).fill(0.8);
  const out = new Float32Array(PIXELS);
  augmentInto(x, { ...IDENTITY, gain: 1.5 }, out, 0);
  assert.ok(out.every((v) => v === 1));
  augmentInto(x, { ...IDENTITY, scale: 0.8 }, out, 0);
  assert.ok(Math.abs(out[14 * IMAGE_SIZE + 14] - 0.8) < 1e-6, "centre kept");
  assert.equal(out[0], 0, "the corner samples outside the image");
});

test("augmentBatch() is deterministic under a seed and differs with another seed", () => {
  const cfg = validateAugment({ shift: 2, flip: 0.5, scale: 0.1, contrast: 0.2 });
  const batch = () => {
    const b = new Float32Array(4 * PIXELS);
    for (let i = 0; i < 4; i++) b.set(ramp(), i * PIXELS);
    return b;
  };
  const a = batch(), b = batch(), c = batch();
  augmentBatch(a, 4, cfg, mulberry32(7));
  augmentBatch(b, 4, cfg, mulberry32(7));
  augmentBatch(c, 4, cfg, mulberry32(8));
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.ok(a.every((v) => v >= 0 && v <= 1));
});

test("draw() stays within the configured ranges; NO_AUGMENT draws the identity", () => {
  const cfg = { shift: 3, flip: 0.5, scale: 0.1, contrast: 0.2 };
  const rand = mulberry32(1);
  let mirrors = 0;
  for (let i = 0; i < 2000; i++) {
    const d = draw(cfg, rand);
    assert.ok(Number.isInteger(d.dx) && Math.abs(d.dx) <= 3 && Math.abs(d.dy) <= 3);
    assert.ok(d.scale >= 0.9 && d.scale <= 1.1 && d.gain >= 0.8 && d.gain <= 1.2);
    if (d.mirror) mirrors++;
  }
  assert.ok(mirrors > 900 && mirrors < 1100, `${mirrors} mirrors in 2000`);
  assert.deepEqual(draw(NO_AUGMENT, mulberry32(3)), IDENTITY);
});

test("validateAugment() names the field out of range", () => {
  assert.throws(() => validateAugment({ ...NO_AUGMENT, flip: 2 }), /augment flip/);
  assert.throws(() => validateAugment({ ...NO_AUGMENT, shift: 1.5 }), /augment shift/);
  assert.throws(() => validateAugment({ ...NO_AUGMENT, contrast: -1 }), /augment contrast/);
});

test("the default recipe shifts by 2 px and mirrors half the images only where mirroring keeps labels; flags override", () => {
  const none = parseFlags([], AUGMENT_FLAGS).flags;
  assert.deepEqual(augmentOf(none, true), { shift: 2, flip: 0.5, scale: 0, contrast: 0 });
  assert.deepEqual(augmentOf(none, false), { shift: 2, flip: 0, scale: 0, contrast: 0 });
  const asked = parseFlags(["--augment-flip", "0.25"], AUGMENT_FLAGS).flags;
  assert.equal(augmentOf(asked, false)?.flip, 0.25);
  const off = parseFlags(["--augment-flip", "0", "--augment-shift", "0"], AUGMENT_FLAGS).flags;
  assert.equal(augmentOf(off, true), undefined);
});
