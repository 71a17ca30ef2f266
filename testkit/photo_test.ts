import assert from "node:assert/strict";
import { renderPhoto } from "./photo.ts";

Deno.test("renderPhoto() puts a dark RGB object on a white canvas with margins", () => {
  // A bright square in the middle of the 28x28 image (light on dark, as in the dataset).
  const px = new Uint8Array(784);
  for (let y = 10; y < 18; y++) for (let x = 10; x < 18; x++) px[y * 28 + x] = 255;
  const photo = renderPhoto(px, 200, 240, 160, [30, 35, 60]);
  assert.deepEqual([photo.width, photo.height, photo.channels], [200, 240, 3]);
  assert.equal(photo.data.length, 200 * 240 * 3);
  const rgb = (
    x: number,
    y: number,
  ) => [...photo.data.subarray((y * 200 + x) * 3, (y * 200 + x) * 3 + 3)];
  assert.deepEqual(rgb(0, 0), [255, 255, 255], "margin is white");
  assert.deepEqual(rgb(30, 50), [255, 255, 255], "the image's dark background turns white");
  assert.deepEqual(rgb(100, 120), [30, 35, 60], "the object takes the colour");
});
