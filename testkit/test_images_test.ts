import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { DataError, encodeIdx, FILES } from "../common/fashion_mnist.ts";
import { imageAt, readTestImages } from "./test_images.ts";

function withTestSet(images: Uint8Array, labels: Uint8Array, fn: (dir: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), "test-images-"));
  try {
    writeFileSync(
      join(dir, FILES.testImages),
      gzipSync(encodeIdx("images", images, labels.length)),
    );
    writeFileSync(
      join(dir, FILES.testLabels),
      gzipSync(encodeIdx("labels", labels, labels.length)),
    );
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

Deno.test("readTestImages() returns the first `count` images and labels; imageAt() slices one", () => {
  const images = Uint8Array.from({ length: 5 * 784 }, (_, i) => Math.floor(i / 784) * 50);
  withTestSet(images, Uint8Array.of(3, 1, 4, 1, 5), (dir) => {
    const t = readTestImages(3, dir)!;
    assert.equal(t.count, 3);
    assert.deepEqual([...t.labels], [3, 1, 4]);
    assert.equal(t.images.length, 3 * 784);
    assert.ok(imageAt(t, 2).every((v) => v === 100));
    assert.equal(readTestImages(99, dir)!.count, 5, "no more than the file holds");
  });
});

Deno.test("readTestImages() is null without the data and throws DataError on a broken file", () => {
  assert.equal(readTestImages(10, "/nonexistent-fashion-mnist"), null);
  // Labels for 4 images next to a file of 3 images: the reader names the labels file.
  const three = new Uint8Array(3 * 784);
  const dir = mkdtempSync(join(tmpdir(), "test-images-"));
  try {
    writeFileSync(join(dir, FILES.testImages), gzipSync(encodeIdx("images", three, 3)));
    writeFileSync(join(dir, FILES.testLabels), gzipSync(encodeIdx("labels", new Uint8Array(4), 4)));
    assert.throws(
      () => readTestImages(10, dir),
      (e) =>
        e instanceof DataError && e.message.includes(FILES.testLabels) &&
        /holds 4 items, expected 3/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
