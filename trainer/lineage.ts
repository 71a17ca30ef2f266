/**
 * A model's data lineage: which images it was trained on (a fingerprint of the training split),
 * which model it continued from, and how much of that model's training data was replayed. The
 * record goes into the bundle's manifest (bundle/manifest.ts `lineage`) beside the weights
 * checkpoint a later warm start needs, and replay reads a parent's record to find its data again.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type Lineage,
  MANIFEST_FILE,
  readManifest,
  validateManifest,
  verifyBundleFiles,
} from "../bundle/mod.ts";
import { PIXELS } from "../common/labels.ts";
import { rng, shuffle, type Split } from "./data.ts";
import type { TrainingData } from "./datasets/mod.ts";
import type { EpochRecord, TrainConfig, VaeModels } from "./train.ts";
import { encodeCheckpoint, weightGroups } from "./checkpoint.ts";
import { CHECKPOINT_FILE, CHECKPOINT_ROLE, type Parent, WarmStartError } from "./warm_start.ts";

/** sha256 of a training split: its pixels, its labels and the label names, in order. */
export function splitFingerprint(split: Split, labels: readonly string[]): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ count: split.count, labels }));
  h.update(split.images.subarray(0, split.count * PIXELS));
  const l = split.labels.subarray(0, split.count);
  h.update(new Uint8Array(l.buffer, l.byteOffset, l.byteLength));
  return h.digest("hex");
}

/** Reloads a dataset with a run's recorded data options (the CLI's flags-to-options step). */
export type DataLoader = (
  path: string,
  saved: TrainConfig["data"],
  seed: number,
) => Promise<TrainingData>;

/** The parent's training split, loaded again and checked against what the parent recorded. */
async function parentTrainingData(parent: Parent, load: DataLoader): Promise<TrainingData> {
  const m = parent.manifest;
  const cfg = parent.checkpoint.header.config;
  const path = (m.data.dir ?? m.data.source) as string | undefined;
  const what = `--replay: the training data of ${m.name}@${m.version}`;
  if (!path) throw new WarmStartError(`${what} is not recorded (manifest data.dir/source)`);
  if (!existsSync(path)) throw new WarmStartError(`${what} (${path}) is not available`);
  const d = await load(path, cfg.data, cfg.seed);
  const want = m.lineage?.train.fingerprint;
  const got = splitFingerprint(d.train, d.labels);
  const sameIdx = JSON.stringify(d.record.fingerprint) === JSON.stringify(m.data.fingerprint) &&
    d.train.count === m.data.trainImages;
  if (want ? want !== got : !(m.data.fingerprint && sameIdx)) {
    throw new WarmStartError(
      `${what} (${path}) is not what it was trained on: ${
        want ? `fingerprint ${got.slice(0, 12)}, recorded ${want.slice(0, 12)}` : "files changed"
      }`,
    );
  }
  return d;
}

/**
 * `train` with round(fraction x train.count) images of the parent's training data appended,
 * drawn without replacement in an order fixed by `seed`, their labels mapped by name onto
 * `labels`. Returns the mixed split and the record of what was replayed.
 */
export async function replayMix(
  parent: Parent,
  fraction: number,
  train: Split,
  labels: readonly string[],
  seed: number,
  load: DataLoader,
): Promise<{ train: Split; replay: NonNullable<Lineage["replay"]> }> {
  if (!(fraction > 0) || !Number.isFinite(fraction)) {
    throw new WarmStartError(`--replay must be a fraction > 0, got ${fraction}`);
  }
  const d = await parentTrainingData(parent, load);
  const n = Math.round(fraction * train.count);
  if (n < 1 || n > d.train.count) {
    throw new WarmStartError(
      `--replay ${fraction} of ${train.count} images is ${n} parent images; the parent's training data holds ${d.train.count}`,
    );
  }
  const rows = Int32Array.from({ length: d.train.count }, (_, i) => i);
  shuffle(rows, rng((seed * 104729 + 0x2f6e) >>> 0));
  const toNew = d.labels.map((l) => labels.indexOf(l));
  const total = train.count + n;
  const images = new Uint8Array(total * PIXELS);
  images.set(train.images.subarray(0, train.count * PIXELS));
  const out = labels.length > 256 ? new Uint16Array(total) : new Uint8Array(total);
  out.set(train.labels.subarray(0, train.count));
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    images.set(d.train.images.subarray(r * PIXELS, (r + 1) * PIXELS), (train.count + i) * PIXELS);
    out[train.count + i] = toNew[d.train.labels[r]];
  }
  return {
    train: { images, labels: out, count: total },
    replay: {
      fraction,
      images: n,
      parentImages: d.train.count,
      fingerprint: splitFingerprint(d.train, d.labels),
    },
  };
}

/** The lineage record of a run trained on `train` (before any replay), from `parent` or none. */
export function lineageOf(
  data: TrainingData,
  parent: Parent | null,
  replay: Lineage["replay"],
): Lineage {
  const pm = parent?.manifest;
  return {
    parent: pm
      ? { name: pm.name, version: pm.version, testAccuracy: pm.metrics.testAccuracy }
      : null,
    train: {
      kind: data.kind,
      source: data.source,
      images: data.train.count,
      fingerprint: splitFingerprint(data.train, data.labels),
    },
    replay,
    ancestors: pm
      ? [...(pm.lineage?.ancestors ?? []), {
        name: pm.name,
        version: pm.version,
        ...(pm.lineage ? { train: pm.lineage.train.fingerprint } : {}),
      }]
      : [],
  };
}

/**
 * Adds the weights checkpoint (for a later warm start) and the lineage to a written bundle:
 * checkpoint.bin first, then the manifest (temp file + rename), so the version stays the same.
 */
export async function addLineage(
  dir: string,
  lineage: Lineage,
  checkpoint: Uint8Array | null,
): Promise<void> {
  const manifest = await readManifest(dir);
  let files = manifest.files.filter((f) => f.role !== CHECKPOINT_ROLE);
  if (checkpoint) {
    await writeFile(join(dir, CHECKPOINT_FILE), checkpoint);
    const sha256 = createHash("sha256").update(checkpoint).digest("hex");
    files = [...files, {
      role: CHECKPOINT_ROLE,
      path: CHECKPOINT_FILE,
      sha256,
      bytes: checkpoint.length,
    }];
  }
  const updated = validateManifest(JSON.parse(JSON.stringify({ ...manifest, files, lineage })));
  const tmp = join(dir, `.${MANIFEST_FILE}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(updated, null, 2) + "\n");
  await rename(tmp, join(dir, MANIFEST_FILE));
  await verifyBundleFiles(dir, await readManifest(dir));
}

/** The weights-only checkpoint a bundle carries for a later --init-from (no optimizer state). */
export function bundleCheckpoint(
  models: VaeModels,
  config: TrainConfig,
  history: EpochRecord[],
): Uint8Array {
  const { encoder, decoder, head } = models;
  return encodeCheckpoint({
    config,
    epoch: history.length,
    stepInEpoch: 0,
    globalStep: 0,
    history,
    groups: weightGroups({ encoder, decoder, ...(head ? { head } : {}) }),
  });
}
