/**
 * Fashion-MNIST loader: reads the four IDX `.gz` files, validates them, and makes the seeded,
 * stratified subsets and the train/validation split the trainer and experiments need. Pure Node
 * (fs + zlib); no tf here, so tests and scripts can load data without a backend.
 *
 * Images stay uint8 (47 MB for the training set); callers normalise batches with
 * common/preprocess.ts normalizePixels so there is one definition of the input scaling.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  DATA_DIR_ENV,
  DataError,
  DEFAULT_DATA_DIR,
  encodeIdx,
  FILES,
  IDX_MAGIC,
  readIdx as readIdxFile,
  resolveDataDir,
} from "../common/fashion_mnist.ts";
import { NUM_CLASSES, PIXELS } from "../common/labels.ts";
import { mulberry32 as rng } from "../common/random.ts";

// The data's location, file names, IDX reader and DataError live in common/fashion_mnist.ts
// (scripts and tests read the files too); re-exported for the trainer's modules.
export { DATA_DIR_ENV, DataError, DEFAULT_DATA_DIR, encodeIdx, FILES, resolveDataDir };

/** Class index per image: one byte while there are at most 256 classes. */
export type Labels = Uint8Array | Uint16Array;

/** A labelled image set: N images of 784 uint8 pixels (row-major, light on dark). */
export interface Split {
  images: Uint8Array;
  labels: Labels;
  count: number;
}

/** Number of classes a label array spans (largest index + 1). */
export function classCount(labels: Labels): number {
  let k = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] >= k) k = labels[i] + 1;
  return k;
}

export interface Dataset {
  train: Split;
  test: Split;
  dir: string;
  /** sha256 of each decompressed file: identifies the data a model was trained on. */
  fingerprint: Record<string, string>;
}

function readIdx(
  path: string,
  expectMagic: number,
  expectCount: number | undefined,
): { body: Uint8Array; dims: number[]; sha: string } {
  const { body, dims, raw } = readIdxFile(path, expectMagic, expectCount);
  return { body, dims, sha: createHash("sha256").update(raw).digest("hex") };
}

function readSplit(
  dir: string,
  images: string,
  labels: string,
  count: number | undefined,
  fp: Record<string, string>,
): Split {
  const im = readIdx(join(dir, images), IDX_MAGIC.images, count);
  const lb = readIdx(join(dir, labels), IDX_MAGIC.labels, im.dims[0]);
  for (let i = 0; i < lb.body.length; i++) {
    if (lb.body[i] >= NUM_CLASSES) {
      throw new DataError(
        `Cannot load ${join(dir, labels)}: label ${lb.body[i]} at index ${i} is not in 0..${
          NUM_CLASSES - 1
        }.`,
      );
    }
  }
  fp[images] = im.sha;
  fp[labels] = lb.sha;
  return { images: im.body, labels: lb.body, count: im.dims[0] };
}

/**
 * Loads and validates the dataset. Counts are checked against the official 60,000/10,000
 * unless `strictCounts` is false (tests use small hand-made IDX files).
 */
export function loadFashionMnist(
  dir = resolveDataDir(),
  opts: { strictCounts?: boolean } = {},
): Dataset {
  const strict = opts.strictCounts ?? true;
  const fingerprint: Record<string, string> = {};
  const train = readSplit(
    dir,
    FILES.trainImages,
    FILES.trainLabels,
    strict ? 60000 : undefined,
    fingerprint,
  );
  const test = readSplit(
    dir,
    FILES.testImages,
    FILES.testLabels,
    strict ? 10000 : undefined,
    fingerprint,
  );
  return { train, test, dir, fingerprint };
}

/** Only the test split (t10k files): what evaluating a model needs, at a sixth of the reading. */
export function loadFashionMnistTest(dir = resolveDataDir()): Split {
  return readSplit(dir, FILES.testImages, FILES.testLabels, undefined, {});
}

/**
 * mulberry32 (common/random.ts): small, fast, seedable PRNG; every random choice in the trainer
 * goes through it. Re-exported as `rng` for the trainer's modules.
 */
export { rng };

export function shuffle<T>(a: T[] | Int32Array, rand: () => number): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

/** Copies the given rows of a split into a new split. */
export function take(split: Split, idx: ArrayLike<number>): Split {
  const n = idx.length;
  const images = new Uint8Array(n * PIXELS);
  const labels = split.labels instanceof Uint16Array ? new Uint16Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const k = idx[i];
    images.set(split.images.subarray(k * PIXELS, (k + 1) * PIXELS), i * PIXELS);
    labels[i] = split.labels[k];
  }
  return { images, labels, count: n };
}

/**
 * Row indices of a stratified, seeded sample of n items: each class present gets n/K (the remainder
 * goes to the first classes), drawn without replacement. Different seeds give different subsets.
 */
export function stratifiedIndices(labels: Labels, n: number, seed: number): Int32Array {
  if (n > labels.length) {
    throw new RangeError(`Cannot take ${n} samples from a split of ${labels.length}`);
  }
  const byClass: number[][] = Array.from(
    { length: Math.max(NUM_CLASSES, classCount(labels)) },
    () => [],
  );
  for (let i = 0; i < labels.length; i++) byClass[labels[i]].push(i);
  const rand = rng(seed);
  byClass.forEach((c) => shuffle(c, rand));
  const present = byClass.filter((c) => c.length > 0);
  const out: number[] = [];
  const base = Math.floor(n / present.length);
  let extra = n - base * present.length;
  const short: number[] = [];
  for (const c of present) {
    const want = base + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    out.push(...c.slice(0, want));
    if (c.length < want) short.push(want - c.length);
  }
  // A class too small for its share: fill from the rest so n is still met.
  if (out.length < n) {
    const used = new Set(out);
    const rest = [];
    for (let i = 0; i < labels.length; i++) if (!used.has(i)) rest.push(i);
    shuffle(rest, rand);
    out.push(...rest.slice(0, n - out.length));
  }
  const idx = Int32Array.from(out);
  shuffle(idx, rand);
  return idx;
}

export function stratifiedSubset(split: Split, n: number, seed: number): Split {
  return take(split, stratifiedIndices(split.labels, n, seed));
}

/**
 * Held-out validation split taken from the training set (never from test), stratified and
 * seeded: returns disjoint {train, val}.
 */
export function trainValSplit(
  train: Split,
  valCount: number,
  seed: number,
): { train: Split; val: Split } {
  const valIdx = stratifiedIndices(train.labels, valCount, seed);
  const inVal = new Uint8Array(train.count);
  for (const i of valIdx) inVal[i] = 1;
  const rest: number[] = [];
  for (let i = 0; i < train.count; i++) if (!inVal[i]) rest.push(i);
  return { train: take(train, rest), val: take(train, valIdx) };
}
