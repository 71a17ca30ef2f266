/**
 * `export --checkpoint <file> --out <dir>`: writes a model bundle from a checkpoint. exportRun,
 * the steps after a model is trained (bundle, lineage and checkpoint, novelty, int8, publish),
 * is shared with `train`, which runs it when training ends.
 */
import { resolve } from "node:path";
import type { FlagSpecs } from "../../common/flags.ts";
import type { Lineage } from "../../bundle/lineage.ts";
import type { Split } from "../data.ts";
import type { TrainingData } from "../datasets/mod.ts";
import { addLineage, bundleCheckpoint, lineageOf } from "../lineage.ts";
import { type EpochRecord, evaluateVae, type TrainConfig, type VaeModels } from "../train.ts";
import { DATA_FLAGS, type Flags, fromCheckpoint, log, SHARED_FLAGS } from "./common.ts";
import { quantizeBundle } from "./quantize.ts";

const EXPORT_FLAGS = {
  ...DATA_FLAGS,
  "samples-per-class": SHARED_FLAGS["samples-per-class"],
  checkpoint: { type: "string", help: "checkpoint.bin to export" },
  out: { type: "string", help: "bundle directory to write" },
  name: SHARED_FLAGS.name,
  backend: SHARED_FLAGS.backend,
  threads: SHARED_FLAGS.threads,
  int8: SHARED_FLAGS.int8,
} satisfies FlagSpecs;

/** A trained model as exportRun takes it: the models, their config and the epochs' history. */
export interface Trained {
  models: VaeModels;
  config: TrainConfig;
  history: EpochRecord[];
}

/** Writes the bundle (bundle.ts); null, with a message, for a model without a classifier head. */
async function exportBundle(
  r: Trained,
  data: TrainingData,
  outDir: string,
  name: string,
  extra: Record<string, unknown>,
  samplesPerClass: number,
) {
  const { models, config: cfg } = r;
  if (!models.head) {
    log("no classifier head (--head none): a served bundle needs one; skipping export");
    return null;
  }
  const { writeBundle } = await import("../bundle.ts");
  const test = data.test;
  const elbo = evaluateVae(models, cfg.vae.latent, test, { headInput: cfg.head?.input });
  const manifest = await writeBundle(outDir, {
    name,
    encoder: models.encoder,
    decoder: models.decoder,
    head: models.head,
    vaeConfig: cfg.vae,
    headConfig: cfg.head!,
    training: { ...cfg, ...extra },
    data: data.record,
    test,
    testElbo: elbo.elbo,
    labels: data.labels,
    samplesPerClass,
    ...(data.heldOut ? { heldOut: data.heldOut } : {}),
  });
  log(
    `bundle ${manifest.name}/${manifest.version} written to ${outDir}: test accuracy ${
      (manifest.metrics.testAccuracy * 100).toFixed(2)
    }% (onnxruntime) on ${test.count} held-out images, test -ELBO ${elbo.elbo.toFixed(2)}`,
  );
  return manifest;
}

/**
 * Calibration at export (trainer/novelty.ts). A bundle it cannot calibrate (too few images per
 * class) is still a servable bundle, with novelty unavailable, so a failure only warns.
 */
async function calibrateExport(dir: string, train: Split): Promise<void> {
  const { calibrateBundle, HELD_OUT_COUNT } = await import("../novelty.ts");
  try {
    const heldOutCount = Math.min(HELD_OUT_COUNT, Math.floor(train.count / 6));
    const cal = await calibrateBundle(dir, train, { heldOutCount });
    log(
      `novelty calibrated on ${cal.heldOut.images} held-out images: threshold ${
        cal.threshold.score.toFixed(3)
      } (${cal.threshold.percentile}th percentile)`,
    );
  } catch (e) {
    log(
      `warning: novelty not calibrated (${
        (e as Error).message
      }); the bundle serves with novelty unavailable`,
    );
  }
}

/** Bundle, lineage and checkpoint, novelty, int8 and publish after a finished training run. */
export async function exportRun(
  f: Flags,
  r: Trained,
  data: TrainingData,
  lineage: Lineage,
  dir: string,
  extra: Record<string, unknown>,
): Promise<void> {
  const samples = f["samples-per-class"] as number;
  const manifest = await exportBundle(r, data, dir, f.name as string, extra, samples);
  if (!manifest) return;
  const ck = f["bundle-checkpoint"] !== false
    ? bundleCheckpoint(r.models, r.config, r.history)
    : null;
  await addLineage(dir, lineage, ck);
  await calibrateExport(dir, data.train);
  if (f.int8) await quantizeBundle(dir, data, Math.min(2000, data.train.count));
  if (f.publish) {
    const { publish } = await import("../publish.ts");
    const p = await publish(dir, { registry: f.publish as string, gate: { log } });
    log(`published ${p.name}@${p.version} to ${p.dir}; CURRENT was ${p.previous ?? "none"}`);
  }
}

export async function cmdExport(args: string[], usage: string): Promise<number> {
  const r = await fromCheckpoint("export", args, EXPORT_FLAGS, usage, "dir");
  if (!r) return 0;
  const { f, data } = r;
  const lineage = r.config.warmStart?.lineage ?? lineageOf(data, null, null);
  await exportRun(f, r, data, lineage, resolve(f.out as string), {});
  return 0;
}
