/**
 * Warm start (`train --init-from <registry dir | bundle dir | run dir>[@<version>]`): a new run
 * begins from a published model's weights instead of a seeded initialisation. A bundle carries
 * the weights as checkpoint.bin (role "checkpoint", weights only); a run directory's own
 * checkpoint.bin serves for bundles written before bundles carried one. The weights are checked
 * against the bundle's probe before training starts, so a checkpoint that is not the bundle's
 * model is refused. The label set may grow: new classes come after the parent's, the head's
 * last layer is grown (old rows copied, new rows freshly initialised) and old classes keep their
 * indices; a label set that drops or reorders a parent class is refused.
 */
import * as tf from "@tensorflow/tfjs";
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import {
  decodeProbePixels,
  type Manifest,
  MANIFEST_FILE,
  readManifest,
  verifyBundleFiles,
} from "../bundle/mod.ts";
import { listVersions, resolveActive, resolveModelName } from "../registry/registry.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { decodeCheckpoint, groupOf, type LoadedCheckpoint, restoreWeights } from "./checkpoint.ts";
import { splitMoments } from "./model.ts";
import type { TrainConfig, VaeModels } from "./train.ts";
import type { Split } from "./data.ts";
import type { TrainingData } from "./datasets/mod.ts";

/** The role of the weights checkpoint in a bundle's file list. */
export const CHECKPOINT_ROLE = "checkpoint";
export const CHECKPOINT_FILE = "checkpoint.bin";

/** A warm start that cannot go ahead; the CLI reports its message and exits 2. */
export class WarmStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WarmStartError";
  }
}

export interface Parent {
  /** The --init-from value as given. */
  spec: string;
  /** The bundle directory. */
  dir: string;
  manifest: Manifest;
  checkpoint: LoadedCheckpoint<TrainConfig>;
  /** Where the weights came from (the bundle's file or a run directory's checkpoint). */
  checkpointPath: string;
}

/** Splits "<path>@<version>"; an "@" inside the path (before the last "/") is part of it. */
export function splitSpec(spec: string): { path: string; version?: string } {
  const at = spec.lastIndexOf("@");
  if (at <= 0 || spec.indexOf("/", at) >= 0) return { path: spec };
  return { path: spec.slice(0, at), version: spec.slice(at + 1) };
}

/** The bundle directory an --init-from value names: a bundle, a run directory or a registry. */
export async function resolveParentDir(spec: string): Promise<string> {
  const { path, version } = splitSpec(spec);
  const bundleDir = existsSync(join(path, MANIFEST_FILE))
    ? path
    : existsSync(join(path, "bundle", MANIFEST_FILE))
    ? join(path, "bundle")
    : null;
  if (bundleDir) {
    const m = await readManifest(bundleDir);
    if (version !== undefined && m.version !== version) {
      throw new WarmStartError(
        `--init-from ${spec}: ${bundleDir} holds version ${m.version}, not ${version}`,
      );
    }
    return bundleDir;
  }
  if (!existsSync(path)) {
    throw new WarmStartError(`--init-from ${spec}: ${path} does not exist`);
  }
  try {
    if (version === undefined) return (await resolveActive(path)).dir;
    const name = await resolveModelName(path);
    const versions = await listVersions(path, name);
    const hit = versions.find((v) => v.version === version);
    if (!hit) {
      throw new WarmStartError(
        `--init-from ${spec}: model "${name}" has no version ${version} (versions: ${
          versions.map((v) => v.version).join(", ") || "none"
        })`,
      );
    }
    return hit.dir;
  } catch (e) {
    if (e instanceof WarmStartError) throw e;
    throw new WarmStartError(
      `--init-from ${spec}: not a bundle, run or registry directory (${(e as Error).message})`,
    );
  }
}

/** Reads the parent: its manifest, its verified files and its weights checkpoint. */
export async function loadParent(spec: string): Promise<Parent> {
  const dir = await resolveParentDir(spec);
  const manifest = await readManifest(dir);
  await verifyBundleFiles(dir, manifest);
  const entry = manifest.files.find((f) => f.role === CHECKPOINT_ROLE);
  const runCheckpoint = basename(dir) === "bundle" ? join(dirname(dir), CHECKPOINT_FILE) : null;
  const checkpointPath = entry
    ? join(dir, entry.path)
    : runCheckpoint && existsSync(runCheckpoint)
    ? runCheckpoint
    : null;
  if (!checkpointPath) {
    throw new WarmStartError(
      `--init-from ${spec}: bundle ${manifest.name}@${manifest.version} carries no weights checkpoint (${CHECKPOINT_FILE}, written by bundles since warm starts); re-export it with \`deno task train -- export --checkpoint <run>/checkpoint.bin --out <dir>\``,
    );
  }
  const checkpoint = decodeCheckpoint<TrainConfig>(readFileSync(checkpointPath), checkpointPath);
  if (!checkpoint.header.config?.vae || !checkpoint.header.config.head) {
    throw new WarmStartError(
      `--init-from ${spec}: ${checkpointPath} has no VAE and head configuration to rebuild`,
    );
  }
  return { spec, dir, manifest, checkpoint, checkpointPath };
}

/**
 * The new run's label order: the parent's labels first, at their indices, then the new ones in
 * the data's order. `fixedOrder` data (IDX files: the index is in the file) must already list
 * the parent's labels first. Throws when a parent class is missing or would move.
 */
export function growLabels(
  parent: readonly string[],
  data: readonly string[],
  fixedOrder: boolean,
) {
  const missing = parent.filter((l) => !data.includes(l));
  if (missing.length) {
    throw new WarmStartError(
      `Cannot warm-start: the data drops the parent's class(es) ${
        missing.map((l) => `"${l}"`).join(", ")
      }; a warm start keeps every class of the parent (parent: ${parent.join(", ")})`,
    );
  }
  const labels = [...parent, ...data.filter((l) => !parent.includes(l))];
  const moved = parent.filter((l, i) => data.indexOf(l) !== i);
  if (fixedOrder && moved.length) {
    throw new WarmStartError(
      `Cannot warm-start: the data reorders the parent's classes (${
        moved.map((l) => `"${l}" is ${data.indexOf(l)}, was ${parent.indexOf(l)}`).join("; ")
      }); old classes must keep their indices`,
    );
  }
  return { labels, added: labels.slice(parent.length), toNew: data.map((l) => labels.indexOf(l)) };
}

/** The parent's weights in fresh models built for the grown label set. */
export function initFromParent(models: VaeModels, parent: Parent): void {
  const what = `Cannot warm-start from ${parent.spec}`;
  restoreWeights(parent.checkpoint, { encoder: models.encoder, decoder: models.decoder }, what);
  if (!models.head) throw new WarmStartError(`${what}: the new run has no head`);
  const saved = groupOf(parent.checkpoint, "head");
  const weights = models.head.weights;
  if (saved.length !== weights.length) {
    throw new WarmStartError(
      `${what}: the parent's head has ${saved.length} weights, the new one ${weights.length}`,
    );
  }
  const last = weights.length - 2; // the output layer's kernel [H, K] and bias [K]
  const values = saved.map((s, i) => {
    const shape = weights[i].shape as number[];
    if (s.shape.join() === shape.join()) return tf.tensor(s.values, s.shape);
    if (i < last || s.shape.length !== shape.length || s.shape.at(-1)! > shape.at(-1)!) {
      throw new WarmStartError(
        `${what}: head weight ${s.name} is [${s.shape}] in the parent, [${shape}] in the new run`,
      );
    }
    return tf.tensor(growColumns(s.values, s.shape, weights[i].read().dataSync(), shape), shape);
  });
  models.head.setWeights(values);
  tf.dispose(values);
  checkProbe(models, parent);
}

/** `fresh` (new shape) with the parent's columns copied in: rows of [H, K] or entries of [K]. */
function growColumns(
  old: Float32Array,
  oldShape: number[],
  fresh: ArrayLike<number>,
  shape: number[],
) {
  const out = Float32Array.from(fresh);
  const oldK = oldShape.at(-1)!, K = shape.at(-1)!;
  const rows = old.length / oldK;
  for (let r = 0; r < rows; r++) out.set(old.subarray(r * oldK, (r + 1) * oldK), r * K);
  return out;
}

/** The rebuilt encoder must reproduce the parent bundle's probe (mu), or the weights are not its. */
function checkProbe(models: VaeModels, parent: Parent): void {
  const { probe, latentSize: L } = parent.manifest;
  const n = probe.cases.length;
  const x = new Float32Array(n * 784);
  probe.cases.forEach((c, i) => normalizePixels(decodeProbePixels(c.pixels), x.subarray(i * 784)));
  const mu = tf.tidy(() => {
    const out = models.encoder.predict(tf.tensor4d(x, [n, 28, 28, 1])) as tf.Tensor2D;
    return splitMoments(out, L).mu.dataSync();
  });
  let worst = 0;
  probe.cases.forEach((c, i) =>
    c.mu.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - mu[i * L + j]))))
  );
  if (!(worst <= probe.tolerance)) {
    throw new WarmStartError(
      `Cannot warm-start from ${parent.spec}: the weights of ${parent.checkpointPath} miss the bundle's probe by ${worst} (tolerance ${probe.tolerance}); they are not this bundle's model`,
    );
  }
}

/**
 * The data with the parent's label order: its classes at their old indices, new ones after them
 * (image folders list classes by name, so an added class may sort before old ones).
 */
export function withParentLabels(
  data: TrainingData,
  parent: Parent,
  log: (s: string) => void,
): TrainingData {
  const g = growLabels(parent.manifest.labels, data.labels, data.kind === "idx");
  if (g.added.length) {
    log(`warm start: ${g.added.length} new class(es) appended: ${g.added.join(", ")}`);
  }
  if (g.toNew.every((n, i) => n === i)) return data;
  const remap = (s: Split): Split => {
    const labels = s.labels.map((l) => g.toNew[l]) as typeof s.labels;
    return { ...s, labels };
  };
  return {
    ...data,
    labels: g.labels,
    train: remap(data.train),
    val: data.val ? remap(data.val) : null,
    test: remap(data.test),
  };
}
