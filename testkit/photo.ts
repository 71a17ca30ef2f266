/**
 * The "product photo" rendering: a dataset image turned back into what a shop photo looks like
 * (large, RGB, dark object on a white background with margins), so tests and scripts can check
 * that the service's preprocessing undoes it.
 */
import { IMAGE_SIZE } from "../common/labels.ts";
import type { RawImage } from "../common/preprocess.ts";

/**
 * A 28x28 dataset image as a product photo: inverted to a dark object on white, upscaled
 * bilinearly so its longest side fills `objectSize` pixels, coloured (dark navy by default, so
 * the photo is really RGB and slightly less contrasted than the dataset), and centred on a
 * width x height white canvas.
 */
export function renderPhoto(
  px: Uint8Array,
  width = 200,
  height = 240,
  objectSize = 160,
  color: [number, number, number] = [30, 35, 60],
): RawImage {
  const out = new Uint8Array(width * height * 3).fill(255);
  const scale = objectSize / IMAGE_SIZE;
  const ox = Math.round((width - objectSize) / 2), oy = Math.round((height - objectSize) / 2);
  const last = IMAGE_SIZE - 1;
  const at = (x: number, y: number) =>
    px[Math.min(last, Math.max(0, y)) * IMAGE_SIZE + Math.min(last, Math.max(0, x))];
  for (let y = 0; y < objectSize; y++) {
    for (let x = 0; x < objectSize; x++) {
      const sx = (x + 0.5) / scale - 0.5, sy = (y + 0.5) / scale - 0.5;
      const x0 = Math.floor(sx), y0 = Math.floor(sy), fx = sx - x0, fy = sy - y0;
      const v = (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) +
        fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
      const ink = v / 255; // 1 where the garment is, 0 on the background
      const o = ((oy + y) * width + ox + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round((1 - ink) * 255 + ink * color[c]);
    }
  }
  return { width, height, channels: 3, data: out };
}
