/**
 * The decode cache: one binary file holding, per image content hash, the preprocessed 28x28
 * pixels and what the summary reports, so a second run over the same files decodes nothing.
 * Keyed by content (sha256 of the file's bytes), not by path: renaming or moving files keeps
 * the cache valid, and an edited file is decoded again. The header carries the preprocessing
 * recipe's fingerprint, so a cache written by another recipe is ignored. Written to a temporary
 * file and renamed, so an interrupted run never leaves a half-written cache.
 *
 * Beside the content-keyed rows it keeps a file index (path, size, mtime -> row), as git's index
 * does: a file whose size and modification time are unchanged is not read again, which is what
 * makes a cached run fast; any other file is read, hashed and looked up by content.
 *
 * Layout: "LECACHE3" | recipe (16 ASCII hex) | count u32 LE | count x (sha256 32 bytes) |
 * count x (width, height, channels, format: u32 LE each) | count x 784 pixel bytes |
 * index count u32 LE | paths byte length u32 LE | index count x (size, mtimeMs, row: f64 LE) |
 * paths, "\n"-joined. Any length that disagrees (a truncated file) makes the cache unused.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { createHash } from "node:crypto";
import { PIXELS } from "../../common/labels.ts";

const MAGIC = "LECACHE3";
const HEADER = 8 + 16 + 4;

/** Columnar decoded images: row i is hashes[32i..], meta[4i..], pixels[784i..]. */
export interface ImageTable {
  count: number;
  hashes: Uint8Array;
  meta: Uint32Array;
  pixels: Uint8Array;
  /** path -> [size, mtimeMs, row] of the files these rows came from. */
  index: Map<string, [number, number, number]>;
}

/** The default cache file of a dataset: one per source path, in the user's cache directory. */
export function defaultCacheFile(source: string, env = process.env): string {
  const base = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const id = createHash("sha256").update(source).digest("hex").slice(0, 16);
  return join(base, "latent-edge", `images-${id}.bin`);
}

/** The cached table, or null when the file is missing, foreign, truncated or of another recipe. */
export function readCache(file: string, recipe: string): ImageTable | null {
  let b: Buffer;
  try {
    b = readFileSync(file);
  } catch {
    return null;
  }
  if (b.length < HEADER || b.toString("latin1", 0, 8) !== MAGIC) return null;
  if (b.toString("latin1", 8, 24) !== recipe) return null;
  const count = b.readUInt32LE(24);
  const rows = HEADER + count * (32 + 16 + PIXELS);
  if (b.length < rows + 8) return null;
  const entries = b.readUInt32LE(rows);
  const numbers = rows + 8;
  if (b.length !== numbers + entries * 24 + b.readUInt32LE(rows + 4)) return null;
  const paths = b.toString("utf8", numbers + entries * 24).split("\n");
  if (paths.length !== entries) return null;
  // Copied out so the typed views are aligned whatever offset readFileSync's buffer has.
  const nums = new Float64Array(
    b.buffer.slice(b.byteOffset + numbers, b.byteOffset + numbers + entries * 24),
  );
  const index = new Map<string, [number, number, number]>();
  for (let i = 0; i < entries; i++) {
    index.set(paths[i], [nums[3 * i], nums[3 * i + 1], nums[3 * i + 2]]);
  }
  const hashes = new Uint8Array(b.buffer, b.byteOffset + HEADER, count * 32);
  const metaAt = b.byteOffset + HEADER + count * 32;
  const meta = new Uint32Array(b.buffer.slice(metaAt, metaAt + count * 16));
  const pixels = new Uint8Array(b.buffer, metaAt + count * 16, count * PIXELS);
  return { count, hashes, meta, pixels, index };
}

export function writeCache(file: string, recipe: string, t: ImageTable): void {
  if (recipe.length !== 16) throw new Error(`cache recipe id must be 16 characters: ${recipe}`);
  const head = Buffer.alloc(HEADER);
  head.write(MAGIC, 0, "latin1");
  head.write(recipe, 8, "latin1");
  head.writeUInt32LE(t.count, 24);
  const meta = Buffer.from(t.meta.buffer, t.meta.byteOffset, t.count * 16);
  // A newline in a file name would break the joined path list: such files are re-read instead.
  const entries = [...t.index].filter(([p]) => !p.includes("\n"));
  const nums = new Float64Array(entries.length * 3);
  entries.forEach(([, v], i) => nums.set(v, 3 * i));
  const paths = Buffer.from(entries.map(([p]) => p).join("\n"));
  const count = Buffer.alloc(8);
  count.writeUInt32LE(entries.length);
  count.writeUInt32LE(paths.length, 4);
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(
    tmp,
    Buffer.concat([
      head,
      t.hashes.subarray(0, t.count * 32),
      meta,
      t.pixels.subarray(0, t.count * PIXELS),
      count,
      new Uint8Array(nums.buffer),
      paths,
    ]),
  );
  renameSync(tmp, file);
}
