/**
 * A 28x28 image answer: float pixels in [0, 1] -> grey PNG response. Shared by the API
 * (reconstruct, decode) and the demo routes (preprocess) so every image endpoint encodes alike.
 */
import type { Context } from "hono";
import { encodeGreyPng } from "../common/image_codec.ts";
import { IMAGE_SIZE } from "../common/labels.ts";
import { toBytes } from "../common/preprocess.ts";

export function pngResponse(c: Context, pixels: Float32Array): Response {
  const png = encodeGreyPng(toBytes(pixels), IMAGE_SIZE, IMAGE_SIZE);
  // Every answer depends on the request body and the active model: never cache it.
  return c.body(png as Uint8Array<ArrayBuffer>, 200, {
    "Content-Type": "image/png",
    "Cache-Control": "no-store",
  });
}
