/**
 * Which images the regression gate scores both versions on: the held-out set recorded with
 * the active version, or the one the operator names (`--eval-data`). In order:
 *   --eval-data <IDX dir>           that directory's test split (t10k files)
 *   --eval-data <image dataset>     its test split: the active version's held-out.json images
 *                                   found in it when it has one, else the trainer's seeded split
 *   the active version's held-out.json  those images, found in the dataset its manifest names
 *   the active version's data.evaluation  the first `count` images of that Fashion-MNIST split
 * An active version with none of these (and no --eval-data) is refused: the gate never
 * compares on images it cannot name.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { HELD_OUT_FILE, type Manifest } from "../bundle/mod.ts";
import { FASHION_LABELS, PIXELS } from "../common/labels.ts";
import { loadFashionMnistTest, resolveDataDir, type Split } from "./data.ts";
import { loadTrainingData } from "./datasets/mod.ts";
import { detectKind } from "./datasets/listing.ts";

/** The gate's images, labelled by class name. */
export interface EvalSet extends Split {
  labelNames: string[];
  source: string;
  description: string;
}

export interface EvalDataOptions {
  /** An IDX directory or image dataset that replaces the active version's record. */
  evalData?: string;
  /** Fashion-MNIST IDX directory for data.evaluation (default FASHION_MNIST_DIR / system copy). */
  dataDir?: string;
  /** Use only the first N images (0 or undefined: all). */
  images?: number;
  log?: (line: string) => void;
}

export class EvalDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EvalDataError";
  }
}

/** The trainer's defaults for an image dataset without a held-out record (DATA_FLAGS). */
const IMAGE_SPLIT = { testFraction: 0.1, valFraction: 0.1, seed: 1 };

async function imageTestSplit(path: string, heldOutDir: string | null, log: (s: string) => void) {
  const d = await loadTrainingData(path, {
    onBadImage: "skip",
    minPerClass: 1,
    ...IMAGE_SPLIT,
    trainCount: 0,
    valCount: 0,
    heldOut: heldOutDir ?? undefined,
  }, log);
  return { split: d.test, labels: d.labels, kind: d.kind };
}

function fashionTest(dir: string, count?: number) {
  const test = loadFashionMnistTest(dir);
  const n = Math.min(count ?? test.count, test.count);
  return {
    images: test.images.slice(0, n * PIXELS),
    labels: test.labels.slice(0, n),
    count: n,
  };
}

async function chooseImages(
  active: Manifest,
  activeDir: string,
  opts: EvalDataOptions,
): Promise<{ split: Split; labels: string[]; source: string; description: string }> {
  const log = opts.log ?? (() => {});
  const heldOut = existsSync(join(activeDir, HELD_OUT_FILE)) ? activeDir : null;
  if (opts.evalData && detectKind(opts.evalData) === "idx") {
    const split = fashionTest(opts.evalData);
    const description = `the Fashion-MNIST test split of ${opts.evalData}`;
    return { split, labels: [...FASHION_LABELS], source: opts.evalData, description };
  }
  if (opts.evalData) {
    const d = await imageTestSplit(opts.evalData, heldOut, log);
    const how = heldOut
      ? `the held-out images of ${active.version} found in it`
      : "its seeded test split";
    return { split: d.split, labels: d.labels, source: opts.evalData, description: how };
  }
  if (heldOut) {
    const source = active.data.source;
    if (typeof source !== "string") {
      throw new EvalDataError(
        `${active.version} has ${HELD_OUT_FILE} but its manifest names no dataset (data.source); pass --eval-data <dataset>`,
      );
    }
    const d = await imageTestSplit(source, heldOut, log);
    const description = `the held-out images of ${active.version} (${HELD_OUT_FILE})`;
    return { split: d.split, labels: d.labels, source, description };
  }
  const ev = active.data.evaluation as { split?: string; count?: number } | undefined;
  if (ev?.split === "test" && active.data.dataset === "fashion-mnist") {
    const dir = resolveDataDir(opts.dataDir);
    const split = fashionTest(dir, ev.count);
    const description =
      `the first ${split.count} Fashion-MNIST test images (data.evaluation of ${active.version})`;
    return { split, labels: [...FASHION_LABELS], source: dir, description };
  }
  throw new EvalDataError(
    `${active.version} records no held-out set (no ${HELD_OUT_FILE}, no Fashion-MNIST data.evaluation): ` +
      "pass --eval-data <dataset> to name the images, or --force to publish without the gate",
  );
}

/** The gate's images for comparing a candidate with `active` (see the module comment). */
export async function evaluationSet(
  active: Manifest,
  activeDir: string,
  opts: EvalDataOptions = {},
): Promise<EvalSet> {
  const c = await chooseImages(active, activeDir, opts);
  const n = opts.images ? Math.min(opts.images, c.split.count) : c.split.count;
  if (n === 0) {
    throw new EvalDataError(`Cannot run the regression gate: ${c.description} is empty`);
  }
  return {
    images: c.split.images.subarray(0, n * PIXELS),
    labels: c.split.labels.subarray(0, n),
    count: n,
    labelNames: c.labels,
    source: c.source,
    description: n < c.split.count ? `${c.description}, first ${n}` : c.description,
  };
}

/** sha256 of the pixels and class names of the set: two records name the same images or not. */
export function evalSetDigest(s: EvalSet): string {
  const h = createHash("sha256").update(s.images);
  for (let i = 0; i < s.count; i++) h.update(s.labelNames[s.labels[i]] + "\n");
  return h.digest("hex");
}
