/**
 * One image file's bytes -> what training needs: its content hash, the 28x28 model input
 * through exactly the service's preprocessing (common/preprocess.ts, "auto"), and what the data
 * summary reports (size, colour mode, format). Pure: the decode workers and tests call it.
 */
import { createHash } from "node:crypto";
import { decodeImage, ImageCodecError, sniffFormat } from "../../common/image_codec.ts";
import { PIXELS } from "../../common/labels.ts";
import { preprocess, type RawImage, toBytes } from "../../common/preprocess.ts";

export const FORMATS = ["png", "jpeg"] as const;
export const MODES = ["grey", "grey+alpha", "RGB", "RGBA"] as const;

export interface DecodedImage {
  /** 784 bytes, row-major, light on dark: the served model's input. */
  pixels: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
  format: 0 | 1;
}

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** Decodes and preprocesses; throws an Error whose message says why the file is unusable. */
export function decodeFile(bytes: Uint8Array): DecodedImage {
  if (bytes.length === 0) throw new Error("the file is empty");
  const format = sniffFormat(bytes);
  if (!format) throw new Error("not a PNG or JPEG file (unknown signature)");
  let img: RawImage;
  try {
    img = decodeImage(bytes);
  } catch (e) {
    if (e instanceof ImageCodecError) throw new Error(e.message);
    throw e;
  }
  const pixels = toBytes(preprocess(img, "auto"), new Uint8Array(PIXELS));
  return {
    pixels,
    width: img.width,
    height: img.height,
    channels: img.channels,
    format: format === "png" ? 0 : 1,
  };
}

/**
 * A fingerprint of the preprocessing itself: the outputs for a few fixed synthetic images. A
 * cache made by another version of the recipe has another fingerprint and is not used.
 */
export function recipeFingerprint(): string {
  const h = createHash("sha256");
  const probe = (w: number, hgt: number, channels: 1 | 2 | 3 | 4, f: (i: number) => number) => {
    const data = new Uint8Array(w * hgt * channels);
    for (let i = 0; i < data.length; i++) data[i] = f(i) & 255;
    h.update(toBytes(preprocess({ width: w, height: hgt, channels, data }, "auto")));
  };
  probe(28, 28, 1, (i) => i * 7);
  probe(41, 23, 3, (i) => (i % 97 < 40 ? 250 : i * 13));
  probe(30, 30, 4, (i) => (i % 4 === 3 ? (i % 11) * 25 : i * 3));
  probe(19, 33, 2, (i) => (i % 2 ? 255 : 255 - (i % 53)));
  return h.digest("hex").slice(0, 16);
}
