/**
 * Seeding an empty gallery with Fashion-MNIST test images (serve --gallery-seed N), so the
 * demo page has neighbours to show on a fresh install. Reads the IDX file directly (the
 * trainer's loader lives in trainer/, which the server does not import).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { IMAGE_SIZE, PIXELS } from "../../common/labels.ts";
import type { Gallery, NewItem } from "./gallery.ts";

/** The first `count` images and labels of a split ("t10k" test, "train") from `dir`. */
export async function readSplit(
  dir: string,
  count: number,
  split: "t10k" | "train" = "t10k",
): Promise<{ images: Uint8Array; labels: Uint8Array; count: number }> {
  const read = async (name: string, magic: number) => {
    const path = join(dir, name);
    let raw: Uint8Array;
    try {
      raw = gunzipSync(await readFile(path));
    } catch (e) {
      throw new Error(`Cannot read ${path}: ${(e as Error).message}`);
    }
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    if (dv.getUint32(0) !== magic) {
      throw new Error(`${path} is not an IDX file of the expected kind`);
    }
    return { raw, dv };
  };
  const im = await read(`${split}-images-idx3-ubyte.gz`, 2051);
  const lb = await read(`${split}-labels-idx1-ubyte.gz`, 2049);
  if (im.dv.getUint32(8) !== IMAGE_SIZE || im.dv.getUint32(12) !== IMAGE_SIZE) {
    throw new Error(`${dir}: ${split} images are not 28x28`);
  }
  const n = Math.min(count, im.dv.getUint32(4), lb.dv.getUint32(4));
  return { images: im.raw.slice(16, 16 + n * PIXELS), labels: lb.raw.slice(8, 8 + n), count: n };
}

/**
 * Adds the first `count` test images as items "test-<i>", their label (named by `labels`, the
 * active model's manifest labels) as metadata.
 */
export async function seedWithTestImages(
  g: Gallery,
  dir: string,
  count: number,
  labels: readonly string[],
): Promise<number> {
  const t = await readSplit(dir, count);
  const items: NewItem[] = [];
  for (let i = 0; i < t.count; i++) {
    items.push({
      id: `test-${i}`,
      pixels: t.images.subarray(i * PIXELS, (i + 1) * PIXELS),
      metadata: {
        source: "fashion-mnist test",
        index: i,
        label: labels[t.labels[i]] ?? String(t.labels[i]),
      },
    });
  }
  await g.add(items);
  return t.count;
}
