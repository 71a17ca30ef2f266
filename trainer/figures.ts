/**
 * Image grids people look at rather than read: test images beside their VAE reconstructions,
 * written as PNG with the shared codec. The decoder reconstructs from mu (the encoder's mean),
 * the deterministic view of what the latent keeps.
 */
import * as tf from "@tensorflow/tfjs";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { encodeGreyPng } from "../common/image_codec.ts";
import { normalizePixels, toBytes } from "../common/preprocess.ts";
import { splitMoments } from "./model.ts";

/** Decoded pixels (sigmoid of the logits) of mu for n images: [n * 784] in [0, 1]. */
export function reconstruct(
  encoder: tf.LayersModel,
  decoder: tf.LayersModel,
  latent: number,
  images: Uint8Array,
  n: number,
): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor4d(normalizePixels(images.subarray(0, n * PIXELS)), [
      n,
      IMAGE_SIZE,
      IMAGE_SIZE,
      1,
    ]);
    const { mu } = splitMoments(encoder.predict(x) as tf.Tensor2D, latent);
    return tf.sigmoid(decoder.predict(mu) as tf.Tensor).dataSync() as Float32Array;
  });
}

/**
 * Lays rows of 28x28 images into one grey PNG: rows[r] holds k images (k * 784 values in
 * [0, 1]); `scale` enlarges each pixel so the grid is readable; a 2-pixel gap separates cells.
 */
export function gridPng(rows: Float32Array[], perRow: number, scale = 3): Uint8Array {
  const gap = 2, cell = IMAGE_SIZE * scale;
  const W = perRow * cell + (perRow + 1) * gap, H = rows.length * cell + (rows.length + 1) * gap;
  const out = new Uint8Array(W * H).fill(64);
  rows.forEach((row, r) => {
    for (let k = 0; k < perRow; k++) {
      const img = toBytes(row.subarray(k * PIXELS, (k + 1) * PIXELS));
      const ox = gap + k * (cell + gap), oy = gap + r * (cell + gap);
      for (let y = 0; y < cell; y++) {
        for (let x = 0; x < cell; x++) {
          out[(oy + y) * W + ox + x] =
            img[Math.floor(y / scale) * IMAGE_SIZE + Math.floor(x / scale)];
        }
      }
    }
  });
  return encodeGreyPng(out, W, H);
}
