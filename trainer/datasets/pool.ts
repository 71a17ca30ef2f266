/**
 * Decodes a list of image files in parallel (worker_threads, trainer/datasets/_decode_worker.ts)
 * through the decode cache: every file is read and hashed, only files whose content the cache
 * lacks are decoded, and the cache is rewritten with exactly this run's images.
 */
import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { PIXELS } from "../../common/labels.ts";
import type { DecodeResult } from "./_decode_worker.ts";
import { type ImageTable, readCache, writeCache } from "./cache.ts";
import { recipeFingerprint } from "./decode.ts";

export interface DecodeOptions {
  /** Cache file, or null for none. */
  cacheFile: string | null;
  /** Worker threads (default: the machine's cores). */
  threads?: number;
}

export interface DecodedSet extends Omit<ImageTable, "index"> {
  /** Per listed file: its reason when it could not be used, else null. */
  errors: (string | null)[];
  fromCache: number;
  decoded: number;
  seconds: number;
}

const CHUNK = 1024;

function hex(b: Uint8Array, i: number): string {
  return Buffer.from(b.buffer, b.byteOffset + i * 32, 32).toString("hex");
}

/** [size, mtimeMs] per path (NaN when missing). */
function statAll(paths: string[]): Float64Array {
  const out = new Float64Array(paths.length * 2);
  for (let i = 0; i < paths.length; i++) {
    const st = statSync(paths[i], { throwIfNoEntry: false });
    out[2 * i] = st ? st.size : NaN;
    out[2 * i + 1] = st ? st.mtimeMs : NaN;
  }
  return out;
}

/** Runs the files through the workers; results land in the returned columns in list order. */
async function runWorkers(paths: string[], known: Uint8Array, threads: number) {
  const n = paths.length;
  const out = {
    status: new Uint8Array(n),
    hashes: new Uint8Array(n * 32),
    pixels: new Uint8Array(n * PIXELS),
    meta: new Uint32Array(n * 4),
    errors: new Array<string | null>(n).fill(null),
  };
  const jobs = Math.ceil(n / CHUNK);
  const count = Math.max(1, Math.min(threads, jobs));
  let next = 0;
  const workers = Array.from(
    { length: count },
    () => new Worker(new URL("./_decode_worker.mjs", import.meta.url), { workerData: { known } }),
  );
  try {
    await Promise.all(workers.map((w) =>
      new Promise<void>((resolve, reject) => {
        const send = () => {
          if (next >= jobs) return resolve();
          const id = next++;
          w.postMessage({ id, paths: paths.slice(id * CHUNK, (id + 1) * CHUNK) });
        };
        w.on("message", (r: DecodeResult) => {
          const o = r.id * CHUNK;
          out.status.set(r.status, o);
          out.hashes.set(r.hashes, o * 32);
          out.pixels.set(r.pixels, o * PIXELS);
          out.meta.set(r.meta, o * 4);
          r.errors.forEach((e, i) => (out.errors[o + i] = e));
          send();
        });
        w.on("error", reject);
        w.on("exit", (code) => {
          if (code !== 0) reject(new Error(`a decode worker exited with code ${code}`));
        });
        send();
      })
    ));
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return out;
}

export async function decodeAll(paths: string[], opts: DecodeOptions): Promise<DecodedSet> {
  const t0 = performance.now();
  const recipe = recipeFingerprint();
  const cache = opts.cacheFile ? readCache(opts.cacheFile, recipe) : null;
  const n = paths.length;
  const out: Columns = {
    status: new Uint8Array(n),
    hashes: new Uint8Array(n * 32),
    pixels: new Uint8Array(n * PIXELS),
    meta: new Uint32Array(n * 4),
    errors: new Array<string | null>(n).fill(null),
  };
  const stats = statAll(paths);
  // Files unchanged since the cache saw them (same size and mtime) are not read at all.
  const pending: number[] = [];
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(stats[2 * i])) {
      out.status[i] = 2;
      out.errors[i] = "does not exist";
      continue;
    }
    const ix = cache?.index.get(paths[i]);
    if (ix && ix[0] === stats[2 * i] && ix[1] === stats[2 * i + 1] && ix[2] < cache!.count) {
      copyRow(cache!, ix[2], out, i);
      out.status[i] = 1;
    } else pending.push(i);
  }
  let fromCache = n - pending.length, decoded = 0;
  if (pending.length > 0) {
    const threads = opts.threads ?? availableParallelism();
    const r = await runWorkers(
      pending.map((i) => paths[i]),
      cache?.hashes ?? new Uint8Array(0),
      threads,
    );
    const row = new Map<string, number>();
    if (cache) { for (let k = 0; k < cache.count; k++) row.set(hex(cache.hashes, k), k); }
    pending.forEach((i, j) => {
      out.errors[i] = r.errors[j];
      out.status[i] = r.status[j] === 2 ? 2 : 0;
      if (r.status[j] === 2) return;
      out.hashes.set(r.hashes.subarray(j * 32, (j + 1) * 32), i * 32);
      if (r.status[j] === 1) {
        const k = row.get(hex(r.hashes, j));
        if (k === undefined) {
          throw new Error(`decode cache: ${paths[i]} reported cached but is not`);
        }
        copyRow(cache!, k, out, i, false);
        fromCache++;
      } else {
        out.pixels.set(r.pixels.subarray(j * PIXELS, (j + 1) * PIXELS), i * PIXELS);
        out.meta.set(r.meta.subarray(j * 4, (j + 1) * 4), i * 4);
        decoded++;
      }
    });
  }
  if (opts.cacheFile && (pending.length > 0 || cache?.index.size !== n)) {
    writeCache(opts.cacheFile, recipe, usable(out, paths, stats));
  }
  const { status: _, ...columns } = out;
  return { count: n, ...columns, fromCache, decoded, seconds: (performance.now() - t0) / 1000 };
}

interface Columns {
  /** 0 decoded now, 1 from the cache, 2 unusable. */
  status: Uint8Array;
  hashes: Uint8Array;
  pixels: Uint8Array;
  meta: Uint32Array;
  errors: (string | null)[];
}

function copyRow(from: ImageTable, k: number, to: Columns, i: number, withHash = true): void {
  if (withHash) to.hashes.set(from.hashes.subarray(k * 32, (k + 1) * 32), i * 32);
  to.pixels.set(from.pixels.subarray(k * PIXELS, (k + 1) * PIXELS), i * PIXELS);
  to.meta.set(from.meta.subarray(k * 4, (k + 1) * 4), i * 4);
}

/** This run's usable rows, one per content hash, and the index of the files they came from. */
function usable(r: Columns, paths: string[], stats: Float64Array): ImageTable {
  const keep: number[] = [];
  const rowOf = new Map<string, number>();
  const index = new Map<string, [number, number, number]>();
  for (let i = 0; i < r.status.length; i++) {
    if (r.status[i] === 2) continue;
    const h = hex(r.hashes, i);
    let row = rowOf.get(h);
    if (row === undefined) rowOf.set(h, row = keep.length), keep.push(i);
    index.set(paths[i], [stats[2 * i], stats[2 * i + 1], row]);
  }
  const t: ImageTable = {
    count: keep.length,
    hashes: new Uint8Array(keep.length * 32),
    meta: new Uint32Array(keep.length * 4),
    pixels: new Uint8Array(keep.length * PIXELS),
    index,
  };
  keep.forEach((k, j) => {
    t.hashes.set(r.hashes.subarray(k * 32, (k + 1) * 32), j * 32);
    t.meta.set(r.meta.subarray(k * 4, (k + 1) * 4), j * 4);
    t.pixels.set(r.pixels.subarray(k * PIXELS, (k + 1) * PIXELS), j * PIXELS);
  });
  return t;
}
