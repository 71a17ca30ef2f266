/**
 * Builds small labelled image sets on disk for the dataset and end-to-end tests: three classes
 * of simple shapes (a filled square, a ring, a bar) drawn at random sizes and positions, as PNG
 * and JPEG, grey / RGB / RGBA, dark-on-light and light-on-dark, plus one corrupt file. Class
 * names have a space and a non-ASCII letter. Runs under Node and Deno (node:fs only).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodeJpeg, encodePng } from "../../../common/image_codec.ts";
import type { RawImage } from "../../../common/preprocess.ts";
import { mulberry32 } from "../../../common/random.ts";

export const SHAPE_CLASSES = ["bar", "filled square", "ring ö"];

type Shape = (x: number, y: number, cx: number, cy: number, r: number) => boolean;
const SHAPES: Record<string, Shape> = {
  "bar": (x, y, cx, cy, r) => Math.abs(y - cy) < r * 0.25 && Math.abs(x - cx) < r,
  "filled square": (x, y, cx, cy, r) => Math.abs(x - cx) < r * 0.7 && Math.abs(y - cy) < r * 0.7,
  "ring ö": (x, y, cx, cy, r) => Math.abs(Math.hypot(x - cx, y - cy) - r * 0.7) < r * 0.2,
};

/** One image of `cls`: size, colour mode and polarity vary with `i`. */
export function shapeImage(cls: string, i: number, seed = 1): RawImage {
  const rand = mulberry32(seed * 7919 + i * 31 + cls.length);
  const w = [28, 40, 64, 33][i % 4], h = [28, 52, 48, 33][i % 4];
  const channels = ([1, 3, 4, 3] as const)[(i >> 1) % 4];
  const light = i % 3 !== 0; // light background, dark object (a product photo), or the reverse
  const cx = w / 2 + (rand() - 0.5) * w * 0.2, cy = h / 2 + (rand() - 0.5) * h * 0.2;
  const r = Math.min(w, h) * (0.3 + rand() * 0.1);
  const data = new Uint8Array(w * h * channels);
  const ink: [number, number, number] = [20 + (i * 37) % 60, 30, 90];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const on = SHAPES[cls](x, y, cx, cy, r);
      const bg = light ? 245 : 10, o = (y * w + x) * channels;
      for (let c = 0; c < Math.min(3, channels); c++) {
        data[o + c] = on ? (light ? ink[c] : 255 - ink[c]) : bg;
      }
      if (channels === 4) data[o + 3] = 255;
    }
  }
  return { width: w, height: h, channels, data };
}

export interface MadeDataset {
  root: string;
  /** Paths relative to root, with their class, of every usable image. */
  images: { path: string; label: string }[];
  /** The corrupt file, relative to root. */
  corrupt: string;
}

/** `perClass` images of each class under root/<class>/ (mixed PNG/JPEG) plus one corrupt PNG. */
export function makeShapeFolder(root: string, perClass = 8): MadeDataset {
  const images: { path: string; label: string }[] = [];
  for (const cls of SHAPE_CLASSES) {
    mkdirSync(join(root, cls, "nested"), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const img = shapeImage(cls, i);
      const jpeg = i % 4 === 3 && img.channels !== 4;
      const rel = join(cls, i % 5 === 4 ? "nested" : "", `${i}.${jpeg ? "jpg" : "png"}`);
      writeFileSync(join(root, rel), jpeg ? encodeJpeg(img, 92) : encodePng(img));
      images.push({ path: rel, label: cls });
    }
  }
  const corrupt = join(SHAPE_CLASSES[0], "broken.png");
  const png = encodePng(shapeImage(SHAPE_CLASSES[0], 99));
  writeFileSync(join(root, corrupt), png.subarray(0, 40)); // truncated inside the image data
  return { root, images, corrupt };
}

/** A CSV listing (path,label) of the made images, beside them. */
export function writeCsv(made: MadeDataset, name = "list.csv"): string {
  const quote = (s: string) => (/[",]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
  const rows = made.images.map((im) => `${quote(im.path)},${quote(im.label)}`);
  const file = join(made.root, name);
  writeFileSync(file, ["path,label", ...rows].join("\n") + "\n");
  return file;
}
