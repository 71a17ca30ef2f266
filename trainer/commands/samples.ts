/**
 * `samples <bundle-dir>`: writes the demo's sample images (samples.json) into an existing
 * bundle from the dataset's evaluation split, split as the bundle's training recorded it;
 * running it again rewrites the same file.
 */
import type { FlagSpecs } from "../../common/flags.ts";
import { SAMPLES_PER_CLASS } from "../../bundle/samples.ts";
import { DatasetError, loadTrainingData } from "../datasets/mod.ts";
import type { TrainConfig } from "../train.ts";
import { bundleCommand, DATA_FLAGS, dataOptions, dataPath, log } from "./common.ts";

const SAMPLES_FLAGS = {
  ...DATA_FLAGS,
  "per-class": { type: "int", default: SAMPLES_PER_CLASS, help: "images per class" },
} satisfies FlagSpecs;

export async function cmdSamples(args: string[], usage: string): Promise<number> {
  const cmd = bundleCommand(args, SAMPLES_FLAGS, usage, () => "samples needs one <bundle-dir>");
  if (!cmd) return 0;
  const { f, dir } = cmd;
  const { readManifest } = await import("../../bundle/mod.ts");
  const { addSamples } = await import("../bundle_samples.ts");
  const manifest = await readManifest(dir);
  const saved = (manifest.training as Partial<TrainConfig>).data;
  const data = await loadTrainingData(
    dataPath(f),
    dataOptions(f, saved, manifest.training.seed as number | undefined),
    log,
  );
  if (JSON.stringify(data.labels) !== JSON.stringify(manifest.labels)) {
    throw new DatasetError(
      `Cannot add samples to ${dir}: the dataset's classes (${
        data.labels.join(", ")
      }) are not the bundle's (${manifest.labels.join(", ")})`,
    );
  }
  const entry = await addSamples(dir, data.test, f["per-class"] as number);
  log(
    `wrote ${entry.path} (${entry.bytes} bytes, sha256 ${entry.sha256.slice(0, 12)}) into ${dir}`,
  );
  return 0;
}
