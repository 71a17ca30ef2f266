/**
 * JPEG: the header (declared size from the frame header, refusing coding processes and depths
 * jpeg-js cannot decode), decoding with jpeg-js, and the encoder tests and tools use.
 */
import jpeg from "jpeg-js";
import type { RawImage } from "./preprocess.ts";
import { ImageCodecError, type ImageHeader } from "./image_types.ts";

function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) + b[o + 1];
}

export function readJpegHeader(b: Uint8Array): ImageHeader {
  let o = 2;
  while (o < b.length) {
    if (b[o] !== 0xff) throw new ImageCodecError("malformed", `JPEG has a bad marker at byte ${o}`);
    while (o < b.length && b[o] === 0xff) o++; // fill bytes
    if (o >= b.length) break;
    const marker = b[o++];
    // Stand-alone markers carry no length.
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue;
    if (marker === 0xd9 || marker === 0xda) {
      throw new ImageCodecError(
        "malformed",
        "JPEG has no frame header (SOF) before its image data",
      );
    }
    if (o + 2 > b.length) break;
    const len = u16(b, o);
    if (len < 2) {
      throw new ImageCodecError("malformed", `JPEG segment at byte ${o} has length ${len}`);
    }
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 &&
      marker !== 0xcc;
    if (isSof) {
      if (o + 8 > b.length) break;
      const precision = b[o + 2];
      const height = u16(b, o + 3), width = u16(b, o + 5);
      if (marker !== 0xc0 && marker !== 0xc1 && marker !== 0xc2) {
        throw new ImageCodecError(
          "unsupported",
          `JPEG coding process SOF${marker - 0xc0} (lossless/arithmetic) is not supported`,
        );
      }
      if (precision !== 8) {
        throw new ImageCodecError(
          "unsupported",
          `${precision}-bit JPEG is not supported, only 8-bit`,
        );
      }
      if (width === 0 || height === 0) {
        throw new ImageCodecError(
          "malformed",
          `JPEG declares an empty or DNL-sized image (${width}x${height})`,
        );
      }
      return { format: "jpeg", width, height, decodedBytes: width * height * 4 }; // RGBA out
    }
    o += len;
  }
  throw new ImageCodecError("malformed", "JPEG is truncated before its frame header (SOF)");
}

/** JPEG bytes -> 8-bit RGB RawImage (call readJpegHeader and its size checks first). */
export function decodeJpeg(bytes: Uint8Array, maxPixels: number): RawImage {
  try {
    const img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      maxResolutionInMP: Math.ceil(maxPixels / 1e6) + 1,
      maxMemoryUsageInMB: 1024,
    });
    if (!img.width || !img.height) throw new Error("no image data");
    return { width: img.width, height: img.height, channels: 3, data: img.data };
  } catch (e) {
    if (e instanceof ImageCodecError) throw e;
    throw new ImageCodecError(
      "malformed",
      `JPEG does not decode: ${(e as Error).message ?? String(e)}`,
    );
  }
}

/** Grey or RGB RawImage -> baseline JPEG bytes (quality 1-100); used by tests and tools. */
export function encodeJpeg(img: RawImage, quality = 90): Uint8Array {
  const n = img.width * img.height;
  const rgba = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const o = i * img.channels;
    const grey = img.channels <= 2;
    rgba[i * 4] = img.data[o];
    rgba[i * 4 + 1] = grey ? img.data[o] : img.data[o + 1];
    rgba[i * 4 + 2] = grey ? img.data[o] : img.data[o + 2];
    rgba[i * 4 + 3] = 255;
  }
  const out = jpeg.encode({ width: img.width, height: img.height, data: rgba }, quality);
  return new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
}
