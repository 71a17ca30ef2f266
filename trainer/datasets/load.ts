/**
 * Loads an image dataset (folder, CSV or JSONL; see listing.ts) for training: lists it, decodes
 * every file through the service's own preprocessing (pool.ts, cached by content), checks it
 * (unreadable files, classes too small, duplicates, train/test overlap), holds out seeded,
 * stratified test and validation splits by content hash (splits.ts), and prints what it found
 * as a summary table. Every problem is a DatasetError naming the file, line or class.
 */
import { PIXELS } from "../../common/labels.ts";
import type { Split } from "../data.ts";
import { DatasetError, listProblems } from "./errors.ts";
import { listImages, type Listing, type SourceKind } from "./listing.ts";
import { decodeAll, type DecodedSet } from "./pool.ts";
import { assignSplits, type HeldOut, type Role } from "./splits.ts";
import { summaryTable } from "./summary.ts";

export interface ImageDatasetOptions {
  onBadImage: "skip" | "fail";
  minPerClass: number;
  testFraction: number;
  valFraction: number;
  seed: number;
  cacheFile: string | null;
  threads?: number;
  heldOut?: HeldOut | null;
}

/** What every dataset kind gives the trainer: its splits and class names, and where from. */
export interface DatasetSplits {
  kind: SourceKind;
  source: string;
  labels: string[];
  train: Split;
  val: Split | null;
  test: Split;
}

export interface ImageDataset extends DatasetSplits {
  /** Content hashes (hex) of the held-out images, as the bundle records them. */
  heldOut: HeldOut;
  /** What the checks found, for the log and the manifest's data record. */
  report: DataReport;
  summary: string;
}

export interface DataReport {
  listed: number;
  unreadable: { where: string; reason: string }[];
  duplicates: number;
  conflictingLabels: number;
  trainTestOverlap: number;
  ignoredFiles: number;
  perClass: { train: number; val: number; test: number }[];
  sizes: Record<string, number>;
  modes: Record<string, number>;
  formats: Record<string, number>;
  decodedNow: number;
  fromCache: number;
  decodeSeconds: number;
}

const MODE_NAMES = ["", "grey", "grey+alpha", "RGB", "RGBA"];

function hexAt(b: Uint8Array, i: number): string {
  return Buffer.from(b.buffer, b.byteOffset + i * 32, 32).toString("hex");
}

function badImages(listing: Listing, set: DecodedSet, policy: "skip" | "fail") {
  const bad = listing.images.flatMap((img, i) =>
    set.errors[i] === null ? [] : [{ where: img.where, reason: set.errors[i]! }]
  );
  if (bad.length && policy === "fail") {
    throw new DatasetError(
      `Cannot use ${listing.source}: ${bad.length} unreadable image file(s) ` +
        `(--on-bad-image skip leaves them out):\n` +
        listProblems(bad.map((b) => `${b.where}: ${b.reason}`)),
    );
  }
  return bad;
}

function checkClassSizes(listing: Listing, counts: number[], min: number): void {
  const small = listing.classNames.flatMap((name, k) =>
    counts[k] < min ? [`class "${name}": ${counts[k]} usable image(s)`] : []
  );
  if (small.length) {
    throw new DatasetError(
      `Cannot use ${listing.source}: ${small.length} class(es) with fewer than ` +
        `--min-per-class ${min} images:\n${listProblems(small)}`,
    );
  }
}

function gather(set: DecodedSet, rows: number[], labels: number[], K: number): Split {
  const images = new Uint8Array(rows.length * PIXELS);
  const out = K <= 256 ? new Uint8Array(rows.length) : new Uint16Array(rows.length);
  rows.forEach((r, i) => {
    images.set(set.pixels.subarray(r * PIXELS, (r + 1) * PIXELS), i * PIXELS);
    out[i] = labels[r];
  });
  return { images, labels: out, count: rows.length };
}

function tally(set: DecodedSet, rows: number[]) {
  const sizes: Record<string, number> = {}, modes: Record<string, number> = {};
  const formats: Record<string, number> = {};
  for (const r of rows) {
    const [w, h, c, f] = set.meta.subarray(r * 4, r * 4 + 4);
    sizes[`${w}x${h}`] = (sizes[`${w}x${h}`] ?? 0) + 1;
    modes[MODE_NAMES[c]] = (modes[MODE_NAMES[c]] ?? 0) + 1;
    const fmt = f === 0 ? "png" : "jpeg";
    formats[fmt] = (formats[fmt] ?? 0) + 1;
  }
  return { sizes, modes, formats };
}

export async function loadImageDataset(
  path: string,
  opts: ImageDatasetOptions,
): Promise<ImageDataset> {
  const listing = listImages(path);
  const set = await decodeAll(listing.images.map((i) => i.path), {
    cacheFile: opts.cacheFile,
    threads: opts.threads,
  });
  const unreadable = badImages(listing, set, opts.onBadImage);
  const K = listing.classNames.length;
  const good = listing.images.flatMap((_, i) => (set.errors[i] === null ? [i] : []));
  const counts = new Array<number>(K).fill(0);
  for (const i of good) counts[listing.images[i].label]++;
  checkClassSizes(listing, counts, opts.minPerClass);

  const hashes = good.map((i) => hexAt(set.hashes, i));
  const labels = good.map((i) => listing.images[i].label);
  const split = assignSplits({
    hashes,
    labels,
    given: good.map((i) => listing.images[i].split),
    classes: K,
    testFraction: opts.testFraction,
    valFraction: opts.valFraction,
    seed: opts.seed,
    heldOut: opts.heldOut,
  });
  const rowsOf = (role: Role) => good.filter((_, j) => split.role[j] === role);
  const allLabels: number[] = [];
  good.forEach((i, j) => (allLabels[i] = labels[j]));
  const rows = { train: rowsOf("train"), val: rowsOf("val"), test: rowsOf("test") };
  if (rows.test.length === 0) {
    throw new DatasetError(
      `Cannot use ${listing.source}: no test images are left (after duplicates and overlap are ` +
        `removed); give a test split or raise --test-fraction`,
    );
  }
  const hashOf = (r: number) => hexAt(set.hashes, r);
  const perClass = listing.classNames.map(() => ({ train: 0, val: 0, test: 0 }));
  for (const role of ["train", "val", "test"] as const) {
    for (const r of rows[role]) perClass[allLabels[r]][role]++;
  }
  const report: DataReport = {
    listed: listing.images.length,
    unreadable,
    duplicates: good.length - new Set(hashes).size,
    conflictingLabels: split.conflicting,
    trainTestOverlap: split.overlap,
    ignoredFiles: listing.ignored,
    perClass,
    ...tally(set, good),
    decodedNow: set.decoded,
    fromCache: set.fromCache,
    decodeSeconds: set.seconds,
  };
  return {
    kind: listing.kind,
    source: listing.source,
    labels: listing.classNames,
    train: gather(set, rows.train, allLabels, K),
    val: rows.val.length ? gather(set, rows.val, allLabels, K) : null,
    test: gather(set, rows.test, allLabels, K),
    heldOut: { test: rows.test.map(hashOf), val: rows.val.map(hashOf) },
    report,
    summary: summaryTable(listing, report, opts.onBadImage),
  };
}
