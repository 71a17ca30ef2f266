/**
 * Image codecs for the service, the trainer and the tests: sniff PNG/JPEG, read their declared
 * size from the header alone (so a decompression bomb is refused before any pixel is
 * decoded), decode to an 8-bit RawImage (PNG grey, grey+alpha, RGB, RGBA, palette, 1-16 bit;
 * JPEG grey/RGB/CMYK), and encode grey PNGs. The codecs themselves are ./png.ts and ./jpeg.ts
 * (pure-JS fast-png and jpeg-js plus node:zlib, available in Node and Deno); this module sniffs,
 * bounds and dispatches, and is what the rest of the tree imports.
 */
import type { RawImage } from "./preprocess.ts";
import { ImageCodecError, type ImageFormat, type ImageHeader } from "./image_types.ts";
import { decodePng, readPngHeader } from "./png.ts";
import { decodeJpeg, readJpegHeader } from "./jpeg.ts";

export { encodeGreyPng, encodePng } from "./png.ts";
export { encodeJpeg } from "./jpeg.ts";
export {
  ImageCodecError,
  type ImageCodecErrorKind,
  type ImageFormat,
  type ImageHeader,
} from "./image_types.ts";

export interface DecodeOptions {
  /** Refuse images whose declared width x height exceeds this (checked on the header). */
  maxPixels?: number;
  /** Refuse images whose decoded samples would exceed this many bytes (checked on the header). */
  maxDecodedBytes?: number;
}

/** 25 megapixels: any real product photo fits; a bomb declaring 100k x 100k does not. */
export const DEFAULT_MAX_PIXELS = 25_000_000;
/** What 25 megapixels of 8-bit RGBA take: deeper images must be smaller to fit the same bound. */
export const DEFAULT_MAX_DECODED_BYTES = 4 * DEFAULT_MAX_PIXELS;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Formats we recognise only to say "not supported" rather than "not an image". */
const OTHER_SIGNATURES: [string, number[]][] = [
  ["GIF", [0x47, 0x49, 0x46, 0x38]],
  ["BMP", [0x42, 0x4d]],
  ["TIFF", [0x49, 0x49, 0x2a, 0x00]],
  ["TIFF", [0x4d, 0x4d, 0x00, 0x2a]],
  ["WebP", [0x52, 0x49, 0x46, 0x46]], // RIFF
];

function startsWith(b: Uint8Array, sig: number[]): boolean {
  if (b.length < sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (b[i] !== sig[i]) return false;
  return true;
}

/** "png" / "jpeg" from the magic bytes, or null. Content-Type headers are not trusted. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | null {
  if (startsWith(bytes, PNG_SIGNATURE)) return "png";
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return "jpeg";
  }
  return null;
}

/**
 * The format and declared size, from the header only (no decoding). Throws ImageCodecError:
 * "unsupported" for other known image formats, "malformed" for anything else.
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  const format = sniffFormat(bytes);
  if (format === "png") return readPngHeader(bytes);
  if (format === "jpeg") return readJpegHeader(bytes);
  for (const [name, sig] of OTHER_SIGNATURES) {
    if (startsWith(bytes, sig)) {
      throw new ImageCodecError(
        "unsupported",
        `${name} images are not supported; send PNG or JPEG`,
      );
    }
  }
  throw new ImageCodecError(
    "malformed",
    "body is not a PNG or JPEG image (unrecognised magic bytes)",
  );
}

function checkPixels(h: ImageHeader, maxPixels: number): void {
  if (h.width * h.height > maxPixels) {
    throw new ImageCodecError(
      "too-large",
      `${h.format.toUpperCase()} declares ${h.width}x${h.height} = ${
        h.width * h.height
      } pixels, above the limit of ${maxPixels}`,
    );
  }
}

/** Refuses (too-large) an image whose decoded samples would exceed `max` bytes. */
export function checkDecodedBytes(h: ImageHeader, max: number): void {
  if (h.decodedBytes > max) {
    throw new ImageCodecError(
      "too-large",
      `${h.format.toUpperCase()} ${h.width}x${h.height} decodes to ${h.decodedBytes} bytes (bit depth and channels counted), above the limit of ${max}`,
    );
  }
}

/**
 * PNG/JPEG bytes -> 8-bit RawImage. Checks the declared size against maxPixels before
 * decoding anything. Throws ImageCodecError only.
 */
export function decodeImage(bytes: Uint8Array, opts: DecodeOptions = {}): RawImage {
  const header = readImageHeader(bytes);
  checkPixels(header, opts.maxPixels ?? DEFAULT_MAX_PIXELS);
  checkDecodedBytes(header, opts.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES);
  return header.format === "png"
    ? decodePng(bytes)
    : decodeJpeg(bytes, opts.maxPixels ?? DEFAULT_MAX_PIXELS);
}
