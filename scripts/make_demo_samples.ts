/**
 * Writes the demo page's bundled samples (serve/demo/samples/): for each of the ten classes,
 * the first Fashion-MNIST test image of that class as a 28x28 grey PNG exactly as stored in
 * the dataset (light on dark), plus samples.json listing file, class index, label and the
 * image's index in the test set. Deterministic, so re-running it rewrites identical files.
 * Runs on Node or Deno (node: APIs only):
 *
 *   node --import tsx scripts/make_demo_samples.ts [--data-dir DIR] [--out serve/demo/samples]
 *   npx deno run -A scripts/make_demo_samples.ts
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import { gunzipSync } from "node:zlib";
import { encodeGreyPng } from "../common/image_codec.ts";
import { FlagError, type FlagSpecs, parseCommandFlags } from "../common/flags.ts";
import { FASHION_LABELS, IMAGE_SIZE, NUM_CLASSES, PIXELS } from "../common/labels.ts";

const FLAGS = {
  "data-dir": {
    type: "string",
    default: "/usr/share/datasets/fashion-mnist",
    env: "FASHION_MNIST_DIR",
    help: "directory with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz",
  },
  out: { type: "string", default: "serve/demo/samples", help: "directory to write" },
} satisfies FlagSpecs;

const USAGE = "Usage: node --import tsx scripts/make_demo_samples.ts [flags]";

interface SampleEntry {
  file: string;
  index: number;
  label: string;
  testIndex: number;
}

/** File-name-safe slug of a label: "T-shirt/top" -> "t-shirt-top". */
function slug(label: string): string {
  return label.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

async function readIdx(path: string, magic: number): Promise<Uint8Array> {
  const raw = gunzipSync(await readFile(path));
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (dv.getUint32(0) !== magic) {
    throw new Error(`Cannot read ${path}: magic ${dv.getUint32(0)}, expected ${magic}`);
  }
  return new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
}

async function main(args: string[]): Promise<number> {
  const f = parseCommandFlags(args, FLAGS, USAGE, process.env);
  if (!f) return 0;
  const dir = f["data-dir"] as string, out = f.out as string;
  const images = await readIdx(join(dir, "t10k-images-idx3-ubyte.gz"), 2051);
  const labels = await readIdx(join(dir, "t10k-labels-idx1-ubyte.gz"), 2049);
  const count = new DataView(labels.buffer, labels.byteOffset).getUint32(4);
  await mkdir(out, { recursive: true });
  const entries: SampleEntry[] = [];
  for (let k = 0; k < NUM_CLASSES; k++) {
    let i = 0;
    while (i < count && labels[8 + i] !== k) i++;
    if (i === count) throw new Error(`The test set holds no image of class ${k}`);
    const px = images.subarray(16 + i * PIXELS, 16 + (i + 1) * PIXELS);
    const file = `${k}-${slug(FASHION_LABELS[k])}.png`;
    await writeFile(join(out, file), encodeGreyPng(px, IMAGE_SIZE, IMAGE_SIZE));
    entries.push({ file, index: k, label: FASHION_LABELS[k], testIndex: i });
  }
  await writeFile(join(out, "samples.json"), JSON.stringify(entries, null, 2) + "\n");
  console.log(`Wrote ${entries.length} samples and samples.json to ${out}`);
  return 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof FlagError)) throw e;
  console.error(`${e.message}\n${USAGE} (--help lists the flags)`);
  process.exitCode = 2;
}
