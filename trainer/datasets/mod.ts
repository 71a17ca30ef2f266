/**
 * The trainer's one entry to data: `--data <path>` names an IDX directory (Fashion-MNIST, the
 * default), an image folder, or a CSV/JSONL listing, and this returns train / validation /
 * test splits with their class names, whatever the kind. The kind is detected from the path
 * and said in the log.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { HELD_OUT_FILE, validateHeldOut } from "../../bundle/held_out.ts";
import { FASHION_LABELS } from "../../common/labels.ts";
import { loadFashionMnist, type Split, stratifiedSubset, trainValSplit } from "../data.ts";
import { defaultCacheFile } from "./cache.ts";
import { DatasetError } from "./errors.ts";
import { detectKind } from "./listing.ts";
import { type DatasetSplits, loadImageDataset } from "./load.ts";
import type { HeldOut } from "./splits.ts";

export { DatasetError } from "./errors.ts";
export type { HeldOut } from "./splits.ts";

export interface DataOptions {
  onBadImage: "skip" | "fail";
  minPerClass: number;
  testFraction: number;
  valFraction: number;
  /** IDX only: train on a stratified subset of this many images (0 = all). */
  trainCount: number;
  /** IDX only: validation images taken from train (0 = none). */
  valCount: number;
  seed: number;
  /** Decode cache file, "none", or undefined for the default one. */
  cache?: string;
  /** A held-out.json (or a bundle directory holding one) whose images are held out again. */
  heldOut?: string;
  /**
   * The path is the IDX default (not given with --data): a missing directory gets the IDX
   * loader's message, which says how to install Fashion-MNIST.
   */
  idxByDefault?: boolean;
}

export interface TrainingData extends DatasetSplits {
  /** The held-out contents (image sources; IDX has its official test files instead). */
  heldOut: HeldOut | null;
  /** What goes into manifest.data. */
  record: Record<string, unknown>;
}

export function readHeldOut(path: string): HeldOut {
  const file = statSync(path, { throwIfNoEntry: false })?.isDirectory()
    ? join(path, HELD_OUT_FILE)
    : path;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new DatasetError(`Cannot read the held-out record ${file}: ${(e as Error).message}`);
  }
  try {
    return validateHeldOut(raw);
  } catch (e) {
    throw new DatasetError(`Cannot use the held-out record ${file}: ${(e as Error).message}`);
  }
}

export async function loadTrainingData(
  path: string,
  o: DataOptions,
  log: (s: string) => void,
): Promise<TrainingData> {
  const kind = o.idxByDefault && !existsSync(path) ? "idx" : detectKind(path);
  if (kind === "idx") {
    log(`data: ${path} (IDX files, Fashion-MNIST layout)`);
    const d = loadFashionMnist(path);
    let train = d.train;
    if (o.trainCount > 0) train = stratifiedSubset(train, o.trainCount, o.seed);
    let val: Split | null = null;
    if (o.valCount > 0) ({ train, val } = trainValSplit(train, o.valCount, o.seed));
    return {
      kind,
      source: d.dir,
      labels: [...FASHION_LABELS],
      train,
      val,
      test: d.test,
      heldOut: null,
      record: {
        dir: d.dir,
        fingerprint: d.fingerprint,
        trainImages: train.count,
        valImages: val?.count ?? 0,
      },
    };
  }
  const cacheFile = o.cache === "none" ? null : o.cache ?? defaultCacheFile(path);
  const d = await loadImageDataset(path, {
    onBadImage: o.onBadImage,
    minPerClass: o.minPerClass,
    testFraction: o.testFraction,
    valFraction: o.valFraction,
    seed: o.seed,
    cacheFile,
    heldOut: o.heldOut ? readHeldOut(o.heldOut) : null,
  });
  log(d.summary);
  const r = d.report;
  return {
    kind,
    source: d.source,
    labels: d.labels,
    train: d.train,
    val: d.val,
    test: d.test,
    heldOut: d.heldOut,
    record: {
      dataset: d.source.split(/[\\/]/).filter(Boolean).pop() ?? d.source,
      kind,
      source: d.source,
      trainImages: d.train.count,
      valImages: d.val?.count ?? 0,
      testImages: d.test.count,
      split: o.heldOut
        ? { from: "held-out record" }
        : { testFraction: o.testFraction, valFraction: o.valFraction, seed: o.seed },
      checks: {
        listed: r.listed,
        unreadable: r.unreadable.length,
        duplicates: r.duplicates,
        conflictingLabels: r.conflictingLabels,
        trainTestOverlap: r.trainTestOverlap,
      },
      sizes: r.sizes,
      modes: r.modes,
      formats: r.formats,
    },
  };
}
