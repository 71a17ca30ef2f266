/**
 * A decode worker (worker_threads): reads the files it is sent, hashes them, and decodes and
 * preprocesses those whose hash the cache does not hold. Results travel back as transferred
 * buffers, one fixed-size record per file, so 60,000 files cost a few messages.
 */
import { readFileSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { PIXELS } from "../../common/labels.ts";
import { decodeFile, sha256 } from "./decode.ts";

export interface DecodeJob {
  id: number;
  paths: string[];
}

/** status per file: 0 decoded, 1 known to the cache (hash only), 2 failed (see errors). */
export interface DecodeResult {
  id: number;
  status: Uint8Array;
  hashes: Uint8Array;
  pixels: Uint8Array;
  /** width, height, channels, format per file. */
  meta: Uint32Array;
  errors: (string | null)[];
}

const known = new Set<string>();
const cached = (workerData as { known: Uint8Array }).known;
for (let i = 0; i < cached.length; i += 32) {
  known.add(Buffer.from(cached.buffer, cached.byteOffset + i, 32).toString("hex"));
}

parentPort!.on("message", (job: DecodeJob) => {
  const n = job.paths.length;
  const r: DecodeResult = {
    id: job.id,
    status: new Uint8Array(n),
    hashes: new Uint8Array(n * 32),
    pixels: new Uint8Array(n * PIXELS),
    meta: new Uint32Array(n * 4),
    errors: new Array(n).fill(null),
  };
  job.paths.forEach((path, i) => {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      r.status[i] = 2;
      r.errors[i] = `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
      return;
    }
    const hash = sha256(bytes);
    r.hashes.set(hash, i * 32);
    if (known.has(Buffer.from(hash).toString("hex"))) {
      r.status[i] = 1;
      return;
    }
    try {
      const d = decodeFile(bytes);
      r.pixels.set(d.pixels, i * PIXELS);
      r.meta.set([d.width, d.height, d.channels, d.format], i * 4);
    } catch (e) {
      r.status[i] = 2;
      r.errors[i] = (e as Error).message;
    }
  });
  parentPort!.postMessage(
    r,
    [r.status.buffer, r.hashes.buffer, r.pixels.buffer, r.meta.buffer] as ArrayBuffer[],
  );
});
