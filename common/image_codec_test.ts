import assert from "node:assert/strict";
import { test } from "node:test";
import { deflateSync } from "node:zlib";
import { decode as decodePngRaw, encode as encodePngRaw } from "fast-png";
import {
  decodeImage,
  encodeGreyPng,
  encodeJpeg,
  encodePng,
  ImageCodecError,
  readImageHeader,
  sniffFormat,
} from "./image_codec.ts";

function ramp(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7) & 255);
}

function codecError(kind: string) {
  return (e: unknown) => e instanceof ImageCodecError && e.kind === kind;
}

/** A PNG chunk with a valid CRC (zlib's crc32 is not exposed in Deno, so compute it). */
function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  let c = ~0;
  for (let i = 4; i < 8 + body.length; i++) {
    c ^= out[i];
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  dv.setUint32(8 + body.length, ~c >>> 0);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}

function ihdr(w: number, h: number, depth = 8, colorType = 0): Uint8Array {
  const b = new Uint8Array(13);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, w), dv.setUint32(4, h);
  b[8] = depth, b[9] = colorType;
  return chunk("IHDR", b);
}

const SIG = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG built by hand: signature, `header` (IHDR), `before` chunks, deflated `raw` rows, IEND. */
function pngOf(header: Uint8Array, raw: Uint8Array, ...before: Uint8Array[]): Uint8Array {
  return concat(
    SIG,
    header,
    ...before,
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array()),
  );
}

test("encodeGreyPng() round-trips through decodeImage() as 1-channel 8-bit", () => {
  const px = ramp(28 * 28);
  const img = decodeImage(encodeGreyPng(px, 28, 28));
  assert.equal(img.channels, 1);
  assert.deepEqual([img.width, img.height], [28, 28]);
  assert.deepEqual(Array.from(img.data), Array.from(px));
});

test("decodeImage() reads grey+alpha, RGB and RGBA PNGs", () => {
  for (const channels of [2, 3, 4] as const) {
    const data = ramp(5 * 3 * channels);
    const img = decodeImage(encodePng({ width: 5, height: 3, channels, data }));
    assert.equal(img.channels, channels);
    assert.deepEqual(Array.from(img.data), Array.from(data));
  }
});

test("decodeImage() scales 16-bit PNG to 8-bit by the high byte", () => {
  const data = Uint16Array.from([0, 0x00ff, 0x0100, 0x8000, 0xffff, 0x1234]);
  const png = encodePngRaw({ width: 3, height: 2, data, depth: 16, channels: 1 });
  const img = decodeImage(png);
  assert.deepEqual(Array.from(img.data), [0, 0, 1, 0x80, 0xff, 0x12]);
});

test("decodeImage() expands palette PNGs (8-bit and 2-bit indices) to RGB", () => {
  const palette = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [10, 20, 30]];
  // 8-bit indices built by hand (colour type 3), so the test does not depend on the encoder.
  const idx = [0, 1, 2, 3, 3, 2];
  const raw8 = Uint8Array.from([0, ...idx.slice(0, 3), 0, ...idx.slice(3)]); // filter byte per row
  const plte = chunk("PLTE", Uint8Array.from(palette.flat()));
  const png8 = pngOf(ihdr(3, 2, 8, 3), raw8, plte);
  const img8 = decodeImage(png8);
  assert.equal(img8.channels, 3);
  assert.deepEqual(Array.from(img8.data), idx.flatMap((i) => palette[i]));
  // 2-bit: row of 3 pixels packs into one byte: 00 01 10 -> 0b00011000
  const raw2 = Uint8Array.from([0, 0b00011000, 0, 0b11111000]);
  const png2 = pngOf(ihdr(3, 2, 2, 3), raw2, plte);
  assert.deepEqual(
    Array.from(decodeImage(png2).data),
    [0, 1, 2, 3, 3, 2].flatMap((i) => palette[i]),
  );
});

test("decodeImage() unpacks 1-bit grey PNG to 0/255", () => {
  const raw = Uint8Array.from([0, 0b10100000, 0, 0b01000000]);
  const png = pngOf(ihdr(3, 2, 1, 0), raw);
  assert.deepEqual(Array.from(decodeImage(png).data), [255, 0, 255, 0, 255, 0]);
});

test("encodeJpeg() output decodes as RGB with the same size and close pixels", () => {
  const grey = new Uint8Array(40 * 30).fill(200);
  const bytes = encodeJpeg({ width: 40, height: 30, channels: 1, data: grey }, 95);
  assert.equal(sniffFormat(bytes), "jpeg");
  assert.deepEqual(readImageHeader(bytes), {
    format: "jpeg",
    width: 40,
    height: 30,
    decodedBytes: 40 * 30 * 4,
  });
  const img = decodeImage(bytes);
  assert.equal(img.channels, 3);
  assert.ok(Math.abs(img.data[0] - 200) <= 3, `pixel ${img.data[0]} not near 200`);
});

test("decodeImage() refuses a PNG declaring 100000x100000 before decoding (too-large)", () => {
  const png = concat(SIG, ihdr(100_000, 100_000), chunk("IEND", new Uint8Array()));
  assert.throws(() => decodeImage(png, { maxPixels: 25_000_000 }), codecError("too-large"));
});

test("decodeImage() refuses a JPEG whose SOF declares 60000x60000 (too-large)", () => {
  const bytes = encodeJpeg({ width: 8, height: 8, channels: 1, data: new Uint8Array(64) });
  const h = readImageHeader(bytes);
  assert.equal(h.width, 8);
  // Patch the SOF0 height/width fields.
  let o = 2;
  while (!(bytes[o] === 0xff && bytes[o + 1] === 0xc0)) {
    o += 2 + ((bytes[o + 2] << 8) | bytes[o + 3]);
  }
  bytes[o + 5] = 0xea, bytes[o + 6] = 0x60, bytes[o + 7] = 0xea, bytes[o + 8] = 0x60;
  assert.deepEqual(readImageHeader(bytes), {
    format: "jpeg",
    width: 60000,
    height: 60000,
    decodedBytes: 60000 * 60000 * 4,
  });
  assert.throws(() => decodeImage(bytes, { maxPixels: 25_000_000 }), codecError("too-large"));
});

test("decodeImage() refuses a small PNG whose data inflates far beyond its size (zip bomb)", () => {
  const png = pngOf(ihdr(10, 10), new Uint8Array(5_000_000));
  assert.ok(png.length < 10_000);
  assert.throws(() => decodeImage(png), codecError("too-large"));
});

test("decodeImage() says 'unsupported' for GIF/BMP and 'malformed' for junk and truncation", () => {
  assert.throws(
    () => decodeImage(new TextEncoder().encode("GIF89a....")),
    codecError("unsupported"),
  );
  assert.throws(() => decodeImage(Uint8Array.from([0x42, 0x4d, 1, 2])), codecError("unsupported"));
  assert.throws(() => decodeImage(new TextEncoder().encode("hello")), codecError("malformed"));
  assert.throws(() => decodeImage(new Uint8Array()), codecError("malformed"));
  const png = encodeGreyPng(ramp(784), 28, 28);
  const jpg = encodeJpeg({ width: 28, height: 28, channels: 1, data: ramp(784) });
  for (const cut of [10, 30, png.length - 20, png.length - 13]) {
    assert.throws(
      () => decodeImage(png.subarray(0, cut)),
      codecError("malformed"),
      `png cut at ${cut}`,
    );
  }
  for (const cut of [3, 10, 100]) {
    assert.throws(
      () => decodeImage(jpg.subarray(0, cut)),
      codecError("malformed"),
      `jpeg cut at ${cut}`,
    );
  }
});

test("encodeGreyPng() refuses a pixel count that does not match the size", () => {
  assert.throws(() => encodeGreyPng(new Uint8Array(10), 28, 28), ImageCodecError);
});

/** Applies PNG filter `f` to 8-bit scanlines (the encoder's side), one filter for every row. */
function filterRows(px: Uint8Array, w: number, h: number, bpp: number, f: number): Uint8Array {
  const stride = w * bpp, out = new Uint8Array(h * (stride + 1));
  const at = (y: number, x: number) => (y < 0 || x < 0 ? 0 : px[y * stride + x]);
  for (let y = 0; y < h; y++) {
    out[y * (stride + 1)] = f;
    for (let x = 0; x < stride; x++) {
      const a = at(y, x - bpp), b = at(y - 1, x), c = at(y - 1, x - bpp);
      const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
      const pred = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][f];
      out[y * (stride + 1) + 1 + x] = (px[y * stride + x] - pred) & 255;
    }
  }
  return out;
}

const COLOR_TYPE = { 1: 0, 2: 4, 3: 2, 4: 6 } as const;

test("decodeImage() undoes every PNG row filter for 8-bit grey, grey+alpha, RGB and RGBA, as fast-png does", () => {
  for (const bpp of [1, 2, 3, 4] as const) {
    // Values that wrap around 255 and rows that differ, so each filter has work to do.
    const w = 9, h = 5;
    const px = Uint8Array.from({ length: w * h * bpp }, (_, i) => (i * 37 + (i % 7) * 91) & 255);
    for (const f of [0, 1, 2, 3, 4]) {
      const png = pngOf(ihdr(w, h, 8, COLOR_TYPE[bpp]), filterRows(px, w, h, bpp, f));
      const img = decodeImage(png);
      assert.equal(img.channels, bpp);
      assert.deepEqual(Array.from(img.data), Array.from(px), `bpp ${bpp}, filter ${f}`);
      assert.deepEqual(Array.from(img.data), Array.from(decodePngRaw(png).data as Uint8Array));
    }
  }
});

test("decodeImage() refuses an 8-bit PNG with an unknown row filter or too little image data", () => {
  const rows = filterRows(ramp(16), 4, 4, 1, 0);
  rows[2 * 5] = 9; // row 2's filter byte
  const bad = pngOf(ihdr(4, 4), rows);
  assert.throws(
    () => decodeImage(bad),
    (e) => codecError("malformed")(e) && /filter type 9/.test(String(e)),
  );
  const short = pngOf(ihdr(4, 4), rows.subarray(0, 12));
  assert.throws(
    () => decodeImage(short),
    (e) => codecError("malformed")(e) && /truncated/.test(String(e)),
  );
});

test("decodeImage() refuses by decoded bytes: 16-bit samples and palette expansion count", () => {
  const png = encodeGreyPng(new Uint8Array(784), 28, 28).slice();
  const dv = new DataView(png.buffer);
  dv.setUint32(16, 5000), dv.setUint32(20, 5000);
  png[24] = 16, png[25] = 6; // 16-bit RGBA: 8 bytes per pixel
  assert.equal(readImageHeader(png).decodedBytes, 200_000_000);
  assert.throws(
    () => decodeImage(png),
    (e: unknown) =>
      e instanceof ImageCodecError && e.kind === "too-large" && /200000000 bytes/.test(e.message),
  );
  png[24] = 8, png[25] = 3; // 8-bit palette: expands to RGBA
  assert.equal(readImageHeader(png).decodedBytes, 100_000_000);
  png[25] = 0; // 8-bit grey
  assert.equal(readImageHeader(png).decodedBytes, 25_000_000);
});
