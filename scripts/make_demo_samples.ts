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
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import process from "node:process";
import {
  DATA_DIR_ENV,
  DataError,
  DEFAULT_DATA_DIR,
  FILES,
  IDX_MAGIC,
  readIdx,
} from "../common/fashion_mnist.ts";
import { encodeGreyPng } from "../common/image_codec.ts";
import { FlagError, type FlagSpecs, parseCommandFlags } from "../common/flags.ts";
import { FASHION_LABELS, IMAGE_SIZE, NUM_CLASSES, PIXELS } from "../common/labels.ts";

const FLAGS = {
  "data-dir": {
    type: "string",
    default: DEFAULT_DATA_DIR,
    env: DATA_DIR_ENV,
    help: `directory with ${FILES.testImages} and ${FILES.testLabels}`,
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

async function main(args: string[]): Promise<number> {
  const f = parseCommandFlags(args, FLAGS, USAGE, process.env);
  if (!f) return 0;
  const dir = f["data-dir"] as string, out = f.out as string;
  const images = readIdx(join(dir, FILES.testImages), IDX_MAGIC.images).body;
  const labels = readIdx(join(dir, FILES.testLabels), IDX_MAGIC.labels).body;
  const count = Math.min(labels.length, images.length / PIXELS);
  await mkdir(out, { recursive: true });
  const entries: SampleEntry[] = [];
  for (let k = 0; k < NUM_CLASSES; k++) {
    let i = 0;
    while (i < count && labels[i] !== k) i++;
    if (i === count) throw new Error(`The test set holds no image of class ${k}`);
    const px = images.subarray(i * PIXELS, (i + 1) * PIXELS);
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
  if (e instanceof DataError) {
    console.error(e.message);
    process.exitCode = 1;
  } else {
    if (!(e instanceof FlagError)) throw e;
    console.error(`${e.message}\n${USAGE} (--help lists the flags)`);
    process.exitCode = 2;
  }
}
