/**
 * Where the Fashion-MNIST files live and how to read them: the default directory, the
 * environment variable that overrides it, the four file names, and one IDX reader that
 * validates what it reads (and its writer, for tests that build small or broken files). The
 * trainer's loader (trainer/data.ts), the scripts and the testkit all read the data through
 * this module; node: APIs only, so it runs on Node and Deno alike.
 */
import { existsSync, readFileSync } from "node:fs";
import process from "node:process";
import { gunzipSync } from "node:zlib";
import { IMAGE_SIZE } from "./labels.ts";

export const DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist";
export const DATA_DIR_ENV = "FASHION_MNIST_DIR";

export const FILES = {
  trainImages: "train-images-idx3-ubyte.gz",
  trainLabels: "train-labels-idx1-ubyte.gz",
  testImages: "t10k-images-idx3-ubyte.gz",
  testLabels: "t10k-labels-idx1-ubyte.gz",
} as const;

/** IDX magic numbers: unsigned bytes, 3 dimensions (images) or 1 (labels). */
export const IDX_MAGIC = { images: 0x00000803, labels: 0x00000801 } as const;

const HOW_TO_GET =
  "Get the data with `apt-get install -y dataset-fashion-mnist` (Debian; files land in " +
  `${DEFAULT_DATA_DIR}), or put the four official files (${Object.values(FILES).join(", ")}) ` +
  `in a directory and pass it with --data-dir or the ${DATA_DIR_ENV} environment variable.`;

/** A file that is missing or not what it should be; the message says how to get the data. */
export class DataError extends Error {
  constructor(message: string) {
    super(`${message}\n${HOW_TO_GET}`);
    this.name = "DataError";
  }
}

/** The data directory: the flag if given, else the environment variable, else the default. */
export function resolveDataDir(flag?: string): string {
  return flag ?? process.env[DATA_DIR_ENV] ?? DEFAULT_DATA_DIR;
}

export interface Idx {
  /** The items, row-major (a view into `raw`). */
  body: Uint8Array;
  dims: number[];
  /** The whole decompressed file (header and body): what a fingerprint hashes. */
  raw: Uint8Array;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

/**
 * Reads a gzipped IDX file and checks it: magic number, header, item count (when
 * `expectCount` is given), 28x28 images, and a body exactly as long as the header promises.
 * Every failure is a DataError naming the file and what is wrong with it.
 */
export function readIdx(path: string, expectMagic: number, expectCount?: number): Idx {
  if (!existsSync(path)) throw new DataError(`Cannot load Fashion-MNIST: ${path} does not exist.`);
  let raw: Uint8Array;
  try {
    const buf = gunzipSync(readFileSync(path));
    // A plain Uint8Array, not a Buffer: Buffer.slice() returns a view where callers expect a copy.
    raw = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (e) {
    throw new DataError(
      `Cannot load ${path}: it is not a valid gzip file (${
        (e as Error).message
      }); the file is corrupt or truncated.`,
    );
  }
  const fail = (why: string) => new DataError(`Cannot load ${path}: ${why}`);
  if (raw.length < 8) throw fail(`${raw.length} bytes is too short for an IDX header.`);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const magic = view.getUint32(0);
  if (magic !== expectMagic) {
    throw fail(
      `IDX magic number is ${hex(magic)}, expected ${hex(expectMagic)} (wrong or corrupt file).`,
    );
  }
  const ndim = magic & 0xff;
  const header = 4 + 4 * ndim;
  if (raw.length < header) throw fail("truncated IDX header.");
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(view.getUint32(4 + 4 * i));
  if (expectCount !== undefined && dims[0] !== expectCount) {
    throw fail(`holds ${dims[0]} items, expected ${expectCount}.`);
  }
  if (ndim === 3 && (dims[1] !== IMAGE_SIZE || dims[2] !== IMAGE_SIZE)) {
    throw fail(
      `images are ${dims[1]}x${dims[2]}, expected ${IMAGE_SIZE}x${IMAGE_SIZE}.`,
    );
  }
  const want = dims.reduce((a, b) => a * b, 1);
  const have = raw.length - header;
  if (have !== want) {
    throw fail(
      `body has ${have} bytes, the header promises ${want} (truncated or corrupt file).`,
    );
  }
  return { body: raw.subarray(header, header + want), dims, raw };
}

/**
 * Writes items as an (uncompressed) IDX file: 28x28 images or one label byte each (wider label
 * arrays are narrowed to bytes: IDX labels are uint8).
 */
export function encodeIdx(
  kind: "images" | "labels",
  values: Uint8Array | Uint16Array,
  count: number,
): Uint8Array {
  const data = values instanceof Uint8Array ? values : Uint8Array.from(values);
  const dims = kind === "images" ? [count, IMAGE_SIZE, IMAGE_SIZE] : [count];
  const out = new Uint8Array(4 + 4 * dims.length + data.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, IDX_MAGIC[kind]);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
