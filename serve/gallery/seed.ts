/**
 * Seeding an empty gallery with Fashion-MNIST test images (serve --gallery-seed N), so the
 * demo page has neighbours to show on a fresh install. Reads the IDX files through
 * common/fashion_mnist.ts, the one IDX reader (its errors name the file and what is wrong).
 */
import { join } from "node:path";
import { FILES, IDX_MAGIC, readIdx } from "../../common/fashion_mnist.ts";
import { PIXELS } from "../../common/labels.ts";
import type { Gallery, NewItem } from "./gallery.ts";

/** The first `count` images and labels of a split ("t10k" test, "train") from `dir`. */
export function readSplit(
  dir: string,
  count: number,
  split: "t10k" | "train" = "t10k",
): Promise<{ images: Uint8Array; labels: Uint8Array; count: number }> {
  const test = split === "t10k";
  const im = readIdx(join(dir, test ? FILES.testImages : FILES.trainImages), IDX_MAGIC.images);
  const lb = readIdx(join(dir, test ? FILES.testLabels : FILES.trainLabels), IDX_MAGIC.labels);
  const n = Math.min(count, im.dims[0], lb.dims[0]);
  return Promise.resolve({
    images: im.body.slice(0, n * PIXELS),
    labels: lb.body.slice(0, n),
    count: n,
  });
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
