/**
 * Large PNGs for the decode tests and benchmarks, built without holding their pixels: one
 * scanline repeated `height` times, deflated as a stream, so a 5000x5000 16-bit RGBA image
 * (200 MB decoded) costs a few hundred KB and no 200 MB buffer to make.
 */
import { crc32 } from "node:zlib";

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, data.length);
  const td = new Uint8Array(4 + data.length);
  td.set(new TextEncoder().encode(type), 0);
  td.set(data, 4);
  out.set(td, 4);
  dv.setUint32(8 + data.length, crc32(td) >>> 0);
  return out;
}

/** A width x height PNG of colour type 6 (RGBA) or 0 (grey) at `depth` bits. */
export async function bigPng(
  width: number,
  height: number,
  opts: { depth: 8 | 16; channels: 1 | 4; flat?: boolean },
): Promise<Uint8Array> {
  const bps = opts.depth / 8;
  const row = new Uint8Array(1 + width * opts.channels * bps);
  // Not flat unless asked: a varied row makes real decode work.
  if (!opts.flat) { for (let i = 1; i < row.length; i++) row[i] = (i * 31) % 251; }
  const cs = new CompressionStream("deflate");
  const writer = cs.writable.getWriter();
  const parts: Uint8Array[] = [];
  const reading = (async () => {
    for await (const p of cs.readable) parts.push(p);
  })();
  for (let y = 0; y < height; y++) await writer.write(row);
  await writer.close();
  await reading;
  const idat = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) idat.set(p, o), o += p.length;
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width), dv.setUint32(4, height);
  ihdr[8] = opts.depth, ihdr[9] = opts.channels === 4 ? 6 : 0;
  const sig = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);
  const all = [sig, chunk("IHDR", ihdr), chunk("IDAT", idat), chunk("IEND", new Uint8Array())];
  const out = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
  o = 0;
  for (const p of all) out.set(p, o), o += p.length;
  return out;
}
