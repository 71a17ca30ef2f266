/**
 * Training-time augmentation of 28x28 images (light on dark): random shifts, horizontal
 * mirrors, small scale changes and contrast changes, drawn per image from a seeded stream, so a
 * run (and a resumed run) sees the same augmented batches. A mirrored shoe is still a shoe, and
 * real product photos are framed less tightly than the dataset: these are the variations the
 * served model meets that the training images lack. The VAE reconstructs the augmented image,
 * so its ELBO stays a likelihood of what it was shown.
 */
import type { FlagSpecs } from "../common/flags.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";

export interface AugmentConfig {
  /** Largest shift along each axis, pixels (uniform in [-shift, shift], whole pixels). */
  shift: number;
  /** Probability of a horizontal mirror. */
  flip: number;
  /** Largest relative scale change around the centre (uniform in [1 - scale, 1 + scale]). */
  scale: number;
  /** Largest relative contrast change: pixels times U(1 - contrast, 1 + contrast), clipped. */
  contrast: number;
}

export const NO_AUGMENT: AugmentConfig = Object.freeze({
  shift: 0,
  flip: 0,
  scale: 0,
  contrast: 0,
});

/** True when the config changes nothing (the trainer then skips the pass). */
export function isIdentity(a: AugmentConfig | undefined): boolean {
  return !a || (a.shift === 0 && a.flip === 0 && a.scale === 0 && a.contrast === 0);
}

/** Checks the ranges; the message names the flag-like field at fault. */
export function validateAugment(a: AugmentConfig): AugmentConfig {
  const bad = (what: string, why: string): never => {
    throw new Error(`augment ${what}: ${why}`);
  };
  if (!Number.isInteger(a.shift) || a.shift < 0 || a.shift > 8) bad("shift", "must be 0..8 px");
  if (!(a.flip >= 0 && a.flip <= 1)) bad("flip", "must be a probability in [0, 1]");
  if (!(a.scale >= 0 && a.scale < 0.5)) bad("scale", "must be in [0, 0.5)");
  if (!(a.contrast >= 0 && a.contrast < 1)) bad("contrast", "must be in [0, 1)");
  return a;
}

/** One image's draw: what augmentInto applies. */
export interface Draw {
  dx: number;
  dy: number;
  mirror: boolean;
  scale: number;
  gain: number;
}

/** Draws one image's transform from `rand` (uniform in [0, 1)); always five draws per image. */
export function draw(a: AugmentConfig, rand: () => number): Draw {
  const u = [rand(), rand(), rand(), rand(), rand()];
  return {
    dx: Math.floor(u[0] * (2 * a.shift + 1)) - a.shift,
    dy: Math.floor(u[1] * (2 * a.shift + 1)) - a.shift,
    mirror: u[2] < a.flip,
    scale: 1 + (2 * u[3] - 1) * a.scale,
    gain: 1 + (2 * u[4] - 1) * a.contrast,
  };
}

/**
 * Writes the transformed image `x` (PIXELS floats in [0, 1]) into `out` at `at`: output pixel
 * (X, Y) samples the source at ((X - c - dx) / s + c, (Y - c - dy) / s + c), mirrored about the
 * centre column when asked, bilinearly; outside the image is 0 (the dark background).
 */
export function augmentInto(x: Float32Array, d: Draw, out: Float32Array, at: number): void {
  const c = (IMAGE_SIZE - 1) / 2;
  const px = (ix: number, iy: number) =>
    ix < 0 || iy < 0 || ix >= IMAGE_SIZE || iy >= IMAGE_SIZE ? 0 : x[iy * IMAGE_SIZE + ix];
  for (let Y = 0; Y < IMAGE_SIZE; Y++) {
    const sy = (Y - c - d.dy) / d.scale + c;
    const y0 = Math.floor(sy), fy = sy - y0;
    for (let X = 0; X < IMAGE_SIZE; X++) {
      let sx = (X - c - d.dx) / d.scale + c;
      if (d.mirror) sx = IMAGE_SIZE - 1 - sx;
      const x0 = Math.floor(sx), fx = sx - x0;
      const v = (1 - fy) * ((1 - fx) * px(x0, y0) + fx * px(x0 + 1, y0)) +
        fy * ((1 - fx) * px(x0, y0 + 1) + fx * px(x0 + 1, y0 + 1));
      out[at + Y * IMAGE_SIZE + X] = Math.min(1, v * d.gain);
    }
  }
}

/** Augments the first n images of a batch in place, each with its own draw from `rand`. */
export function augmentBatch(
  batch: Float32Array,
  n: number,
  a: AugmentConfig,
  rand: () => number,
): void {
  const src = new Float32Array(PIXELS);
  for (let i = 0; i < n; i++) {
    src.set(batch.subarray(i * PIXELS, (i + 1) * PIXELS));
    augmentInto(src, draw(a, rand), batch, i * PIXELS);
  }
}

/**
 * The default recipe's augmentation: shifts of up to 2 px, and mirroring with probability 0.5
 * where a mirrored image keeps its label (Fashion-MNIST: a shoe facing right is still a shoe).
 * Own data gets no mirroring unless asked: a mirrored digit or letter is another glyph.
 */
export const DEFAULT_SHIFT = 2;
export const DEFAULT_FLIP = 0.5;

/** The trainer's flags for augmentation (shift and flip on by default: DEFAULT_SHIFT/FLIP). */
export const AUGMENT_FLAGS = {
  "augment-shift": {
    type: "int",
    default: DEFAULT_SHIFT,
    help: "random shift of each training image, up to N px (0 = none)",
  },
  "augment-flip": {
    type: "number",
    help:
      `probability of mirroring a training image left-right (default ${DEFAULT_FLIP} on Fashion-MNIST, 0 on --data: a mirrored digit is another glyph)`,
  },
  "augment-scale": {
    type: "number",
    default: 0,
    help: "random scale change of each training image, up to this fraction",
  },
  "augment-contrast": {
    type: "number",
    default: 0,
    help: "random contrast change of each training image, up to this fraction",
  },
} satisfies FlagSpecs;

/**
 * The config the flags ask for, or undefined when they ask for none. `mirrorSafe`: whether the
 * data keeps its labels under mirroring, which decides the flip's default.
 */
export function augmentOf(
  f: Record<string, unknown>,
  mirrorSafe: boolean,
): AugmentConfig | undefined {
  const a = validateAugment({
    shift: f["augment-shift"] as number,
    flip: (f["augment-flip"] as number | undefined) ?? (mirrorSafe ? DEFAULT_FLIP : 0),
    scale: f["augment-scale"] as number,
    contrast: f["augment-contrast"] as number,
  });
  return isIdentity(a) ? undefined : a;
}
