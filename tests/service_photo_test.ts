/**
 * "Product photo" test: real Fashion-MNIST test images rendered as shop photos (200x240 RGB
 * JPEG, dark garment on white with margins) must classify nearly as well through
 * /v1/classify?preprocess=auto as the plain 28x28 PNGs do. This is what checks that
 * common/preprocess.ts undoes a photo the way the dataset authors made their images.
 */
import assert from "node:assert/strict";
import { encodeBase64 } from "../common/base64.ts";
import { encodeGreyPng, encodeJpeg } from "../common/image_codec.ts";
import { renderPhoto } from "../testkit/photo.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";
import { imageAt, readTestImages } from "../testkit/test_images.ts";

const COUNT = 400;
/** Largest accepted drop in accuracy (points) from plain images to photos on the tiny bundle. */
const MAX_DROP_POINTS = 7;

const test = readTestImages(COUNT);
const served = test ? await serveBundle("native") : null;

async function accuracy(images: Uint8Array[], query: string): Promise<number> {
  let correct = 0;
  for (let start = 0; start < images.length; start += 100) {
    const chunk = images.slice(start, start + 100);
    const res = await served!.app.request(`/v1/classify${query}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ images: chunk.map(encodeBase64) }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const body = await res.json();
    body.predictions.forEach((p: { index: number }, i: number) => {
      if (p.index === test!.labels[start + i]) correct++;
    });
  }
  return correct / images.length;
}

Deno.test({
  name:
    `product photos (200x240 RGB JPEG) lose at most ${MAX_DROP_POINTS} accuracy points vs plain 28x28 PNGs (${COUNT} test images)`,
  ignore: test === null,
  async fn() {
    const plain: Uint8Array[] = [], photos: Uint8Array[] = [];
    for (let i = 0; i < test!.count; i++) {
      const px = imageAt(test!, i);
      plain.push(encodeGreyPng(px, 28, 28));
      photos.push(encodeJpeg(renderPhoto(px), 85));
    }
    const plainAcc = await accuracy(plain, "");
    const photoAcc = await accuracy(photos, "?preprocess=auto");
    const drop = (plainAcc - photoAcc) * 100;
    console.log(
      `plain 28x28 PNG: ${(plainAcc * 100).toFixed(1)}%  product photo JPEG: ${
        (photoAcc * 100).toFixed(1)
      }%  drop ${drop.toFixed(1)} points (first ${COUNT} test images, ${served!.model.name}@${
        served!.model.version
      })`,
    );
    assert.ok(
      drop <= MAX_DROP_POINTS,
      `accuracy drops ${drop.toFixed(1)} points on photos, more than ${MAX_DROP_POINTS}`,
    );
    // The plain images must match the manifest's accuracy on its own evaluation set within noise.
    assert.ok(plainAcc > 0.3, `plain accuracy ${plainAcc} is implausibly low`);
  },
});

Deno.test({
  name: "preprocess=none refuses a 200x240 photo with 422",
  ignore: test === null,
  async fn() {
    const res = await served!.app.request("/v1/classify?preprocess=none", {
      method: "POST",
      headers: { "Content-Type": "image/jpeg" },
      body: encodeJpeg(renderPhoto(imageAt(test!, 0))) as Uint8Array<ArrayBuffer>,
    });
    assert.equal(res.status, 422);
    assert.equal((await res.json()).error.code, "bad_image");
  },
});
