/**
 * The Fashion-MNIST test set for tests and scripts: the first `count` images and labels read
 * through the project's one IDX reader (common/fashion_mnist.ts), or null when the data is not
 * installed, so a test can skip and a script can say how to get it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { FILES, IDX_MAGIC, readIdx, resolveDataDir } from "../common/fashion_mnist.ts";
import { PIXELS } from "../common/labels.ts";

export interface TestImages {
  /** count x 784 uint8 pixels, row-major, light on dark. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

/**
 * The first `count` test images and labels from `dir` (default: --data-dir's default, i.e.
 * FASHION_MNIST_DIR or the Debian package's directory). Null when the files are absent; a
 * file that is present but broken throws the reader's DataError, naming the file.
 */
export function readTestImages(count = 10000, dir = resolveDataDir()): TestImages | null {
  const imagesPath = join(dir, FILES.testImages), labelsPath = join(dir, FILES.testLabels);
  if (!existsSync(imagesPath) || !existsSync(labelsPath)) return null;
  const images = readIdx(imagesPath, IDX_MAGIC.images);
  const labels = readIdx(labelsPath, IDX_MAGIC.labels, images.dims[0]);
  const n = Math.min(count, images.dims[0]);
  return {
    images: images.body.slice(0, n * PIXELS),
    labels: labels.body.slice(0, n),
    count: n,
  };
}

/** Image `i` of `t` (a view, 784 bytes). */
export function imageAt(t: TestImages, i: number): Uint8Array {
  return t.images.subarray(i * PIXELS, (i + 1) * PIXELS);
}
