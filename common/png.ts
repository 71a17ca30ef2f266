/**
 * PNG: the header (declared size and decoded cost, read before any pixel), a bounded inflate
 * (node:zlib with a ceiling of what the declared size needs), a fast path for the 8-bit
 * non-interlaced images clients send, and fast-png for the rest (palettes, 1-16 bit, Adam7);
 * plus the encoders tests and grids use.
 */
import { decode as decodePngRaw, encode as encodePngRaw } from "fast-png";
import { inflateSync } from "node:zlib";
import type { RawImage } from "./preprocess.ts";
import { ImageCodecError, type ImageHeader } from "./image_types.ts";

function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
}

export function readPngHeader(b: Uint8Array): ImageHeader {
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

/** PNG bytes -> 8-bit RawImage (call readPngHeader and its size checks first). */
export function decodePng(bytes: Uint8Array): RawImage {
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
