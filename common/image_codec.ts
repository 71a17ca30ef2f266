/**
 * Image codecs for the service, the trainer and the tests: sniff PNG/JPEG, read their declared
 * size from the header alone (so a decompression bomb is refused before any pixel is
 * decoded), decode to an 8-bit RawImage (PNG grey, grey+alpha, RGB, RGBA, palette, 1-16 bit;
 * JPEG grey/RGB/CMYK), and encode grey PNGs. Built on the pure-JS fast-png and jpeg-js plus
 * node:zlib (available in Node and Deno) for a bounded inflate; no runtime-specific APIs.
 */
import { decode as decodePngRaw, encode as encodePngRaw } from "fast-png";
import jpeg from "jpeg-js";
import { inflateSync } from "node:zlib";
import type { RawImage } from "./preprocess.ts";

export type ImageFormat = "png" | "jpeg";

/**
 * Why decoding failed; the service maps these to HTTP statuses:
 * "unsupported" -> 415, "malformed" -> 400, "too-large" -> 413.
 */
export type ImageCodecErrorKind = "unsupported" | "malformed" | "too-large";

export class ImageCodecError extends Error {
  constructor(readonly kind: ImageCodecErrorKind, message: string) {
    super(message);
    this.name = "ImageCodecError";
  }
}

export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** Bytes the decoded samples take (bit depth and channels counted), the cost to bound. */
  decodedBytes: number;
}

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

function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
}

function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) + b[o + 1];
}

function readPngHeader(b: Uint8Array): ImageHeader {
  // Signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4) + depth, colour type.
  if (b.length < 26) {
    throw new ImageCodecError("malformed", `PNG is truncated: ${b.length} bytes, no complete IHDR`);
  }
  const type = String.fromCharCode(b[12], b[13], b[14], b[15]);
  if (type !== "IHDR") {
    throw new ImageCodecError("malformed", `PNG's first chunk is "${type}", expected IHDR`);
  }
  const width = u32(b, 16), height = u32(b, 20);
  if (width === 0 || height === 0) {
    throw new ImageCodecError("malformed", `PNG declares an empty image (${width}x${height})`);
  }
  // Palette images expand to RGBA; 16-bit samples decode to two bytes each.
  const channels = ({ 0: 1, 2: 3, 3: 4, 4: 2, 6: 4 } as Record<number, number>)[b[25]] ?? 4;
  return {
    format: "png",
    width,
    height,
    decodedBytes: width * height * channels * (b[24] > 8 ? 2 : 1),
  };
}

function readJpegHeader(b: Uint8Array): ImageHeader {
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

interface InflatedPng {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  channels: number;
  interlaced: boolean;
  /** The inflated IDAT stream: filtered scanlines. */
  data: Uint8Array;
}

/**
 * Inflates the PNG's IDAT stream with a ceiling of what the declared size needs, so a small
 * file that inflates to gigabytes is refused; fast-png itself would inflate without bound.
 */
function inflatePng(b: Uint8Array): InflatedPng {
  const width = u32(b, 16), height = u32(b, 20), depth = b[24], colorType = b[25];
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  if (!channels) throw new ImageCodecError("malformed", `PNG has unknown colour type ${colorType}`);
  if (![1, 2, 4, 8, 16].includes(depth)) {
    throw new ImageCodecError("malformed", `PNG has invalid bit depth ${depth}`);
  }
  const rowBytes = Math.ceil((width * channels * depth) / 8);
  // Adam7 adds at most one filter byte per row per pass and some rounding; be generous.
  const limit = height * (rowBytes + 1) + 7 * (height + 8) + 1024;
  const parts: Uint8Array[] = [];
  let total = 0;
  let o = 8;
  while (o + 8 <= b.length) {
    const len = u32(b, o);
    const type = String.fromCharCode(b[o + 4], b[o + 5], b[o + 6], b[o + 7]);
    if (o + 12 + len > b.length) break; // truncated chunk: let the decoder report it
    if (type === "IDAT") {
      parts.push(b.subarray(o + 8, o + 8 + len));
      total += len;
    }
    if (type === "IEND") break;
    o += 12 + len;
  }
  if (parts.length === 0) {
    throw new ImageCodecError("malformed", "PNG has no complete IDAT chunk (truncated?)");
  }
  const idat = new Uint8Array(total);
  let p = 0;
  for (const part of parts) idat.set(part, p), p += part.length;
  try {
    const data = inflateSync(idat, { maxOutputLength: limit });
    return { width, height, depth, colorType, channels, interlaced: b[28] !== 0, data };
  } catch (e) {
    if (e instanceof RangeError) {
      throw new ImageCodecError(
        "too-large",
        `PNG image data inflates beyond the ${limit} bytes its ${width}x${height} size needs`,
      );
    }
    throw new ImageCodecError(
      "malformed",
      `PNG image data does not inflate: ${(e as Error).message}`,
    );
  }
}

/**
 * Unpacks 1/2/4-bit rows (each row starts on a byte) to one byte per pixel; grey levels are
 * scaled to 0..255, palette indices are kept as they are.
 */
function unpackBits(
  data: Uint8Array,
  width: number,
  height: number,
  depth: number,
  scale: boolean,
): Uint8Array {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const max = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = data[y * rowBytes + (bit >> 3)];
      const v = (byte >> (8 - depth - (bit & 7))) & max;
      out[y * width + x] = scale ? Math.round((v * 255) / max) : v;
    }
  }
  return out;
}

/**
 * Undoes the scanline filters of a non-interlaced 8-bit PNG (grey, grey+alpha, RGB, RGBA): the
 * formats clients send. fast-png would inflate again in JavaScript, several times slower than
 * this (the inflate above is already done, in native code; docs/performance.md).
 */
function unfilter8(p: InflatedPng): Uint8Array {
  const bpp = p.channels, stride = p.width * bpp;
  if (p.data.length < p.height * (stride + 1)) {
    throw new ImageCodecError(
      "malformed",
      `PNG image data holds ${p.data.length} bytes, ${p.width}x${p.height}x${bpp} needs ${
        p.height * (stride + 1)
      } (truncated?)`,
    );
  }
  const src = p.data, out = new Uint8Array(p.height * stride);
  for (let y = 0; y < p.height; y++) {
    const f = src[y * (stride + 1)], s = y * (stride + 1) + 1, o = y * stride, u = o - stride;
    switch (f) {
      case 0:
        out.set(src.subarray(s, s + stride), o);
        break;
      case 1:
        for (let x = 0; x < stride; x++) {
          out[o + x] = src[s + x] + (x >= bpp ? out[o + x - bpp] : 0);
        }
        break;
      case 2:
        for (let x = 0; x < stride; x++) out[o + x] = src[s + x] + (y > 0 ? out[u + x] : 0);
        break;
      case 3:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? out[o + x - bpp] : 0, b = y > 0 ? out[u + x] : 0;
          out[o + x] = src[s + x] + ((a + b) >> 1);
        }
        break;
      case 4:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? out[o + x - bpp] : 0;
          const b = y > 0 ? out[u + x] : 0;
          const c = x >= bpp && y > 0 ? out[u + x - bpp] : 0;
          const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
          out[o + x] = src[s + x] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default:
        throw new ImageCodecError("malformed", `PNG row ${y} has unknown filter type ${f}`);
    }
  }
  return out;
}

function decodePng(bytes: Uint8Array): RawImage {
  const inflated = inflatePng(bytes);
  if (inflated.depth === 8 && !inflated.interlaced && inflated.colorType !== 3) {
    const { width, height, channels } = inflated;
    return { width, height, channels: channels as 1 | 2 | 3 | 4, data: unfilter8(inflated) };
  }
  // Palettes, 1-4 and 16 bit depths, Adam7 interlacing: fast-png.
  let png;
  try {
    png = decodePngRaw(bytes);
  } catch (e) {
    throw new ImageCodecError("malformed", `PNG does not decode: ${(e as Error).message}`);
  }
  const { width, height, depth } = png;
  if (png.palette) {
    // Palette entries are RGB or RGBA (tRNS); expand indices (1-8 bit) ourselves.
    const idx = depth === 8
      ? (png.data as Uint8Array)
      : unpackBits(png.data as Uint8Array, width, height, depth, false);
    const pal = png.palette;
    const ch = Math.max(...pal.map((c) => c.length)) === 4 ? 4 : 3;
    const out = new Uint8Array(width * height * ch);
    for (let i = 0; i < width * height; i++) {
      const c = pal[idx[i]];
      if (!c) {
        throw new ImageCodecError(
          "malformed",
          `PNG pixel ${i} uses palette index ${idx[i]} beyond its ${pal.length} colours`,
        );
      }
      out[i * ch] = c[0], out[i * ch + 1] = c[1], out[i * ch + 2] = c[2];
      if (ch === 4) out[i * ch + 3] = c.length === 4 ? c[3] : 255;
    }
    return { width, height, channels: ch as 3 | 4, data: out };
  }
  const channels = png.channels as 1 | 2 | 3 | 4;
  const n = width * height * channels;
  let data: Uint8Array;
  if (depth === 16) {
    const src = png.data as Uint16Array;
    data = new Uint8Array(n);
    for (let i = 0; i < n; i++) data[i] = src[i] >> 8;
  } else if (depth < 8) {
    data = unpackBits(png.data as Uint8Array, width, height, depth, true);
  } else {
    data = png.data as Uint8Array;
  }
  if (data.length < n) {
    throw new ImageCodecError(
      "malformed",
      `PNG decoded to ${data.length} bytes, ${width}x${height}x${channels} needs ${n}`,
    );
  }
  return { width, height, channels, data };
}

function decodeJpeg(bytes: Uint8Array, maxPixels: number): RawImage {
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

/** 8-bit grey pixels (row-major) -> PNG bytes. */
export function encodeGreyPng(pixels: Uint8Array, width: number, height: number): Uint8Array {
  if (pixels.length !== width * height) {
    throw new ImageCodecError(
      "malformed",
      `cannot encode PNG: ${pixels.length} pixels for ${width}x${height}`,
    );
  }
  return encodePngRaw({ width, height, data: pixels, depth: 8, channels: 1 });
}

/** Any RawImage (1-4 channels, 8-bit) -> PNG bytes; used by tests and grids. */
export function encodePng(img: RawImage): Uint8Array {
  return encodePngRaw({
    width: img.width,
    height: img.height,
    data: img.data,
    depth: 8,
    channels: img.channels,
  });
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
