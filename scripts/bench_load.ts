/**
 * Loading-speed benchmark for image-folder datasets: writes Fashion-MNIST training images as
 * PNG files into a temporary class-folder tree (<tmp>/<class>/<i>.png), then times the
 * trainer's loader (trainer/datasets/pool.ts decodeAll: read, hash, decode, preprocess in
 * worker threads) twice: a first run with an empty cache and a second run from the cache.
 * Prints images/s for both. Never part of the tests.
 *
 *   node --import tsx scripts/bench_load.ts [--count 60000] [--threads N] [--keep]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { FlagError, formatHelp, parseFlags } from "../common/flags.ts";
import { encodeGreyPng } from "../common/image_codec.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { loadFashionMnist, resolveDataDir } from "../trainer/data.ts";
import { listImages } from "../trainer/datasets/listing.ts";
import { decodeAll } from "../trainer/datasets/pool.ts";
import { DATA_DIR_ENV } from "../common/fashion_mnist.ts";

const FLAGS = {
  count: { type: "int", default: 60000, help: "PNG files to write (from the training images)" },
  threads: { type: "int", default: availableParallelism(), help: "decode worker threads" },
  "data-dir": { type: "string", help: "Fashion-MNIST IDX directory", env: DATA_DIR_ENV },
  keep: { type: "boolean", default: false, help: "keep the temporary folder" },
} as const;

async function main(): Promise<number> {
  const { flags: f } = parseFlags(process.argv.slice(2), FLAGS, process.env);
  if (f.help) {
    console.log(formatHelp("Usage: node --import tsx scripts/bench_load.ts [flags]", FLAGS));
    return 0;
  }
  const data = loadFashionMnist(resolveDataDir(f["data-dir"] as string | undefined));
  const count = Math.min(f.count as number, data.train.count);
  const root = mkdtempSync(join(tmpdir(), "bench-load-"));
  try {
    const t0 = performance.now();
    for (let k = 0; k < 10; k++) mkdirSync(join(root, `class ${k}`));
    for (let i = 0; i < count; i++) {
      const px = data.train.images.subarray(i * PIXELS, (i + 1) * PIXELS);
      const png = encodeGreyPng(px, IMAGE_SIZE, IMAGE_SIZE);
      writeFileSync(join(root, `class ${data.train.labels[i]}`, `${i}.png`), png);
    }
    console.log(`wrote ${count} PNG files in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const cacheFile = join(root, "cache.bin");
    const threads = f.threads as number;
    for (const run of ["first run (empty cache)", "second run (from the cache)"]) {
      const t1 = performance.now();
      const listing = listImages(root);
      const set = await decodeAll(listing.images.map((i) => i.path), { cacheFile, threads });
      const s = (performance.now() - t1) / 1000;
      const bad = set.errors.filter((e) => e !== null).length;
      console.log(
        `${run}: ${count} images in ${s.toFixed(2)} s = ${(count / s).toFixed(0)} images/s ` +
          `(list + read + hash + ${set.decoded} decoded, ${set.fromCache} from cache, ${bad} bad; ` +
          `${threads} threads)`,
      );
    }
  } finally {
    if (!f.keep) rmSync(root, { recursive: true, force: true });
    else console.log(`kept ${root}`);
  }
  return 0;
}

main().then((c) => process.exit(c), (e) => {
  console.error(`error: ${e instanceof FlagError ? e.message : (e as Error).stack}`);
  process.exit(e instanceof FlagError ? 2 : 1);
});
