/**
 * What a training run starts from: its data (the dataset, and the parent's images it replays),
 * the parent model it continues (a warm start) and its lineage. A resumed run starts from what
 * its checkpoint recorded, whatever the flags say.
 */
import type { Lineage } from "../../bundle/lineage.ts";
import { FlagError } from "../../common/flags.ts";
import { classCount, type Split } from "../data.ts";
import {
  type DataOptions,
  DatasetError,
  loadTrainingData,
  type TrainingData,
} from "../datasets/mod.ts";
import { type DataLoader, lineageOf, replayMix } from "../lineage.ts";
import type { TrainConfig } from "../train.ts";
import { loadParent, type Parent, withParentLabels } from "../warm_start.ts";
import { dataOptions, dataPath, type Flags, log } from "./common.ts";

/** What a training run starts from: its data, the parent it continues and its lineage. */
export interface Start {
  data: TrainingData;
  /** The images trained on: the data's training split, plus replayed parent images. */
  train: Split;
  dopts: DataOptions;
  parent: Parent | null;
  lineage: Lineage;
}

/** Reloads a dataset with a run's recorded data options (replay reads the parent's data). */
function dataLoader(f: Flags): DataLoader {
  return (path, saved, seed) =>
    loadTrainingData(path, { ...dataOptions(f, saved, seed), idxByDefault: false }, log);
}

/**
 * The data and the parent of a run. A resumed run trains on the images its checkpoint was
 * trained on (and continues the parent it recorded), whatever the flags say.
 */
export async function startOf(f: Flags, resumed: TrainConfig | null): Promise<Start> {
  const dataSeed = resumed?.seed ?? (f.seed as number);
  const dopts = dataOptions(f, resumed?.data, dataSeed);
  const spec = resumed ? resumed.warmStart?.from : f["init-from"] as string | undefined;
  const fraction = resumed ? resumed.warmStart?.lineage.replay?.fraction ?? 0 : f.replay as number;
  if (fraction && !spec) {
    throw new FlagError("--replay mixes in a parent's data: it needs --init-from");
  }
  const parent = spec ? await loadParent(spec) : null;
  if (parent) {
    const m = parent.manifest;
    log(`warm start from ${m.name}@${m.version} (${parent.dir}; weights ${parent.checkpointPath})`);
  }
  let data = await loadTrainingData(dataPath(f), dopts, log);
  if (parent) data = withParentLabels(data, parent, log);
  if (classCount(data.train.labels) > data.labels.length) {
    throw new DatasetError(`Cannot train: labels exceed the ${data.labels.length} class names`);
  }
  const mixed = parent && fraction
    ? await replayMix(parent, fraction, data.train, data.labels, dataSeed, dataLoader(f))
    : null;
  if (mixed) {
    log(
      `replay: ${mixed.replay.images} of the parent's ${mixed.replay.parentImages} images mixed in`,
    );
  }
  const lineage = resumed?.warmStart?.lineage ?? lineageOf(data, parent, mixed?.replay ?? null);
  return { data, train: mixed?.train ?? data.train, dopts, parent, lineage };
}
