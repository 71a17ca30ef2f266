/**
 * The trainer's command line (`deno task train -- ...` runs it under Node). Subcommands:
 *   train   train the VAE (+ joint head), checkpoint every epoch, export a bundle at the end
 *   export  write a bundle from a checkpoint
 *   publish put a bundle into the model registry, activate, roll back (trainer/publish.ts)
 *   calibrate-novelty  fit and calibrate a bundle's novelty score into its manifest (trainer/novelty.ts)
 *   quantize add an int8 serving graph beside the fp32 one in a bundle (trainer/quantize.ts)
 *   samples add the demo's sample images to an existing bundle (idempotent)
 * Flags are parsed once into a typed config; unknown flags are errors; Ctrl-C stops after the
 * current step and saves a checkpoint that `--resume` continues bit-for-bit.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { FlagError, type FlagSpecs, formatHelp, parseFlags } from "../common/flags.ts";
import { normalizePixels } from "../common/preprocess.ts";
import {
  classCount,
  DataError,
  DEFAULT_DATA_DIR,
  loadFashionMnist,
  resolveDataDir,
  type Split,
  take,
} from "./data.ts";
import {
  type DataOptions,
  DatasetError,
  loadTrainingData,
  type TrainingData,
} from "./datasets/mod.ts";
import { SAMPLES_PER_CLASS } from "../bundle/samples.ts";
import { gridPng, reconstruct } from "./figures.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import {
  initFromParent,
  loadParent,
  type Parent,
  WarmStartError,
  withParentLabels,
} from "./warm_start.ts";
import { addLineage, bundleCheckpoint, type DataLoader, lineageOf, replayMix } from "./lineage.ts";
import type { Lineage } from "../bundle/lineage.ts";
import { initEngine } from "./engine/tfjs_backend.ts";
import { DEFAULT_HEAD, type HeadConfig, REFERENCE_VAE, TINY_VAE, vaeConfig } from "./model.ts";
import {
  type EpochRecord,
  evaluateVae,
  type TrainConfig,
  trainVae,
  type VaeModels,
} from "./train.ts";
import { ENGINE_CHOICES, type EngineChoice } from "./engine/choice.ts";
import { AUGMENT_FLAGS, augmentOf } from "./augment.ts";

/**
 * Defaults are the recipe of the committed default bundle: latent 16 (best served accuracy
 * among the sizes measured, see README), MLP head trained jointly with weight 100 on its
 * cross-entropy, all 60,000 training images.
 */
const DATA_FLAGS = {
  data: {
    type: "string",
    help:
      `dataset: a directory of the four IDX files, an image folder (<root>/<class>/*.png|jpg), or a .csv/.jsonl listing (path,label); default ${DEFAULT_DATA_DIR}`,
  },
  "data-dir": {
    type: "string",
    help: "directory with the four Fashion-MNIST IDX .gz files (same as --data)",
    env: "FASHION_MNIST_DIR",
  },
  "on-bad-image": {
    type: "string",
    default: "fail",
    choices: ["fail", "skip"],
    help: "an unreadable, truncated or non-image file stops the run (fail) or is left out (skip)",
  },
  "min-per-class": {
    type: "int",
    default: 5,
    help: "a class with fewer usable images is an error",
  },
  "test-fraction": {
    type: "number",
    default: 0.1,
    help:
      "image data without a test split: share of each class held out for test (stratified, seeded)",
  },
  "val-fraction": {
    type: "number",
    default: 0.1,
    help: "image data: share of each class held out for validation",
  },
  "held-out": {
    type: "string",
    help: "hold out the images recorded in this held-out.json (or bundle directory) again",
  },
  cache: {
    type: "string",
    help: "decode cache file for image data (default under ~/.cache/latent-edge; none = no cache)",
  },
} satisfies FlagSpecs;

const TRAIN_FLAGS = {
  ...DATA_FLAGS,
  latent: { type: "int", default: 16, help: "latent dimensions L" },
  arch: {
    type: "string",
    default: "reference",
    choices: ["reference", "tiny"],
    help: "VAE architecture: the reference one, or a tiny one (a few thousand weights, for tests)",
  },
  epochs: { type: "int", help: "training epochs (default 12; with --resume, the checkpoint's)" },
  "batch-size": { type: "int", default: 128, help: "images per Adam step" },
  lr: { type: "number", default: 1e-3, help: "Adam learning rate" },
  seed: { type: "int", default: 1, help: "seed for weights, shuffling and noise" },
  head: {
    type: "string",
    default: "mlp",
    choices: ["mlp", "logistic", "none"],
    help: "classifier head trained jointly on mu (none = pure VAE)",
  },
  "class-weight": {
    type: "number",
    default: 100,
    help: "weight of the head's cross-entropy in the joint loss",
  },
  "val-count": {
    type: "int",
    default: 0,
    help: "held-out validation images taken from train (0 = train on all 60,000)",
  },
  "train-count": {
    type: "int",
    default: 0,
    help: "train on a stratified subset of this many images (0 = all)",
  },
  out: {
    type: "string",
    help: "run directory (checkpoint.bin, history.json, bundle/); default runs/<timestamp>",
  },
  resume: {
    type: "string",
    help: "resume from this checkpoint.bin (its config wins; --epochs may extend it)",
  },
  "init-from": {
    type: "string",
    help:
      "warm start: begin from a published model's weights and architecture: <registry dir>[@<version>] (default CURRENT), a bundle dir or a run dir; new classes are appended",
  },
  replay: {
    type: "number",
    default: 0,
    help:
      "with --init-from: mix in this fraction x (training images) of the parent's own training images, sampled under --seed",
  },
  "lr-schedule": {
    type: "string",
    default: "constant",
    choices: ["constant", "cosine"],
    help: "learning rate: constant, or cosine-decayed from --lr to 0 over the run",
  },
  "bundle-checkpoint": {
    type: "boolean",
    default: true,
    help: "carry the weights (checkpoint.bin) in the bundle, so --init-from can continue from it",
  },
  export: {
    type: "boolean",
    default: true,
    help: "write a model bundle to <out>/bundle when training ends",
  },
  name: { type: "string", default: "fashion-vae", help: "model name written into the bundle" },
  backend: {
    type: "string",
    default: "auto",
    choices: ["auto", "tensorflow", "wasm", "cpu"],
    help: "tfjs backend",
  },
  threads: { type: "int", default: 1, help: "wasm threads" },
  engine: {
    type: "string",
    default: "auto",
    choices: ENGINE_CHOICES,
    help:
      "training steps on the tfjs backend, or as one onnxruntime graph (~3-5x faster; evaluation/export stay on tfjs)",
  },
  "ort-threads": { type: "int", default: 1, help: "onnxruntime intra-op threads (--engine ort)" },
  lanes: {
    type: "int",
    default: 1,
    help:
      "data-parallel training lanes, one core and one onnxruntime session each, gradients averaged (--engine ort; must divide --batch-size)",
  },
  progress: { type: "boolean", default: true, help: "show the progress bar" },
  publish: {
    type: "string",
    help: "after exporting, publish the bundle to this registry dir and activate it",
  },
  ...AUGMENT_FLAGS,
  int8: {
    type: "boolean",
    default: false,
    help: "add an int8 serving graph to the exported bundle (as the quantize command does)",
  },
  "samples-per-class": {
    type: "int",
    default: SAMPLES_PER_CLASS,
    help: "held-out images per class stored in the bundle for the demo page",
  },
} satisfies FlagSpecs;

const EXPORT_FLAGS = {
  ...DATA_FLAGS,
  "samples-per-class": TRAIN_FLAGS["samples-per-class"],
  checkpoint: { type: "string", help: "checkpoint.bin to export" },
  out: { type: "string", help: "bundle directory to write" },
  name: TRAIN_FLAGS.name,
  backend: TRAIN_FLAGS.backend,
  threads: TRAIN_FLAGS.threads,
  int8: TRAIN_FLAGS.int8,
} satisfies FlagSpecs;

const QUANTIZE_FLAGS = {
  "data-dir": TRAIN_FLAGS["data-dir"],
  "calibration-images": {
    type: "int",
    default: 2000,
    help: "first N training images whose activations set the int8 ranges",
  },
} satisfies FlagSpecs;

const RECON_FLAGS = {
  ...DATA_FLAGS,
  checkpoint: { type: "string", help: "checkpoint.bin of a trained VAE" },
  out: { type: "string", help: "PNG file to write (test images above their reconstructions)" },
  backend: TRAIN_FLAGS.backend,
  threads: TRAIN_FLAGS.threads,
} satisfies FlagSpecs;

const NOVELTY_FLAGS = {
  "data-dir": TRAIN_FLAGS["data-dir"],
  percentile: {
    type: "number",
    default: 95,
    help: "default threshold: this percentile of the held-out images",
  },
} satisfies FlagSpecs;

const USAGE = `Usage: deno task train -- [train] [flags]      train, checkpoint, export a bundle
       deno task train -- export --checkpoint <file> --out <dir>
       deno task train -- recon --checkpoint <file> --out <png>   reconstructions + test ELBO
       deno task train -- publish <bundle-dir> [--registry models]  (see deno task publish -- --help)
       deno task train -- calibrate-novelty <bundle-dir>   novelty score + percentiles into the manifest
       deno task train -- quantize <bundle-dir> [--calibration-images 2000]  add the int8 graph
       deno task train -- samples <bundle-dir> [--data <path>]   add the demo's sample images`;

const SAMPLES_FLAGS = {
  ...DATA_FLAGS,
  "per-class": { type: "int", default: SAMPLES_PER_CLASS, help: "images per class" },
} satisfies FlagSpecs;

type Flags = Record<string, unknown>;

/** --data, else --data-dir / FASHION_MNIST_DIR, else the Fashion-MNIST default. */
function dataPath(f: Flags): string {
  return (f.data as string | undefined) ?? (f["data-dir"] as string | undefined) ??
    DEFAULT_DATA_DIR;
}

/** The data flags, with what a checkpoint recorded (its split) taking precedence. */
function dataOptions(f: Flags, saved?: TrainConfig["data"], seed?: number): DataOptions {
  return {
    onBadImage: f["on-bad-image"] as "skip" | "fail",
    minPerClass: f["min-per-class"] as number,
    testFraction: saved?.testFraction ?? (f["test-fraction"] as number),
    valFraction: saved?.valFraction ?? (f["val-fraction"] as number),
    trainCount: saved?.trainCount ?? (f["train-count"] as number | undefined) ?? 0,
    valCount: saved?.valCount ?? (f["val-count"] as number | undefined) ?? 0,
    seed: seed ?? (f.seed as number | undefined) ?? 1,
    cache: f.cache as string | undefined,
    heldOut: f["held-out"] as string | undefined,
    idxByDefault: f.data === undefined,
  };
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z");
}

async function exportBundle(
  models: VaeModels,
  cfg: TrainConfig,
  data: TrainingData,
  dataInfo: Record<string, unknown>,
  outDir: string,
  name: string,
  log: (s: string) => void,
  extra: Record<string, unknown>,
  samplesPerClass: number,
) {
  if (!models.head) {
    log("no classifier head (--head none): a served bundle needs one; skipping export");
    return null;
  }
  const { writeBundle } = await import("./bundle.ts");
  const test = data.test;
  const elbo = evaluateVae(models, cfg.vae.latent, test);
  const manifest = await writeBundle(outDir, {
    name,
    encoder: models.encoder,
    decoder: models.decoder,
    head: models.head,
    vaeConfig: cfg.vae,
    headConfig: cfg.head!,
    training: { ...cfg, ...extra },
    data: dataInfo,
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
async function calibrateExport(dir: string, train: Split, log: (s: string) => void): Promise<void> {
  const { calibrateBundle, HELD_OUT_COUNT } = await import("./novelty.ts");
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

/** Adds the int8 graph to the bundle in `dir`, calibrated on the first `count` training images. */
async function quantizeBundle(
  dir: string,
  data: { train: Split; test: Split },
  count: number,
  log: (s: string) => void,
) {
  const { addInt8 } = await import("./quantize.ts");
  if (count < 1 || count > data.train.count) {
    throw new FlagError(
      `--calibration-images must be within [1, ${data.train.count}], got ${count}`,
    );
  }
  const calibration = { images: data.train.images.subarray(0, count * 784), count };
  const m = await addInt8(dir, {
    calibration,
    calibrationSource: `first ${count} training images`,
    test: data.test,
  });
  const q = m.int8!.metrics;
  log(
    `int8 graph added to ${dir}: test accuracy ${(q.testAccuracy * 100).toFixed(2)}% (fp32 ${
      ((q.fp32TestAccuracy as number) * 100).toFixed(2)
    }%), ${m.files.find((f) => f.role === m.int8!.role)!.bytes} bytes (${
      ((q.bytesRelativeToFp32 as number) * 100).toFixed(1)
    }% of fp32)`,
  );
  return m;
}

async function cmdQuantize(args: string[]): Promise<number> {
  const { flags: f, positional } = parseFlags(args, QUANTIZE_FLAGS, process.env);
  if (f.help) {
    console.log(formatHelp(USAGE, QUANTIZE_FLAGS));
    return 0;
  }
  if (positional.length !== 1) {
    throw new FlagError(
      `quantize takes one bundle directory, got ${positional.length} argument(s)\n${USAGE}`,
    );
  }
  const data = loadFashionMnist(resolveDataDir(f["data-dir"] as string | undefined));
  const log = (s: string) => process.stderr.write(s + "\n");
  await quantizeBundle(resolve(positional[0]), data, f["calibration-images"] as number, log);
  return 0;
}

/** What a training run starts from: its data, the parent it continues and its lineage. */
interface Start {
  data: TrainingData;
  /** The images trained on: the data's training split, plus replayed parent images. */
  train: Split;
  dopts: DataOptions;
  parent: Parent | null;
  lineage: Lineage;
}

/** Reloads a dataset with a run's recorded data options (replay reads the parent's data). */
function dataLoader(f: Flags, log: (s: string) => void): DataLoader {
  return (path, saved, seed) =>
    loadTrainingData(path, { ...dataOptions(f, saved, seed), idxByDefault: false }, log);
}

/**
 * The data and the parent of a run. A resumed run trains on the images its checkpoint was
 * trained on (and continues the parent it recorded), whatever the flags say.
 */
async function startOf(f: Flags, resumed: TrainConfig | null, log: (s: string) => void) {
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
    ? await replayMix(parent, fraction, data.train, data.labels, dataSeed, dataLoader(f, log))
    : null;
  if (mixed) {
    log(
      `replay: ${mixed.replay.images} of the parent's ${mixed.replay.parentImages} images mixed in`,
    );
  }
  const lineage = resumed?.warmStart?.lineage ?? lineageOf(data, parent, mixed?.replay ?? null);
  return { data, train: mixed?.train ?? data.train, dopts, parent, lineage } satisfies Start;
}

/** The run's config from the flags; a warm start takes the parent's architecture. */
function trainConfig(f: Flags, start: Start): TrainConfig {
  const K = start.data.labels.length;
  const pc = start.parent?.checkpoint.header.config;
  const headKind = f.head as string;
  const head: HeadConfig | null = pc?.head
    ? { ...pc.head, classes: K }
    : headKind === "none"
    ? null
    : { ...DEFAULT_HEAD, kind: headKind as HeadConfig["kind"], classes: K };
  const { dopts } = start;
  return {
    vae: pc?.vae ?? vaeConfig(
      { latent: f.latent as number, seed: f.seed as number },
      f.arch === "tiny" ? TINY_VAE : REFERENCE_VAE,
    ),
    head,
    classWeight: head ? (f["class-weight"] as number) : 0,
    epochs: (f.epochs as number | undefined) ?? (f.resume ? 0 : 12),
    batchSize: f["batch-size"] as number,
    learningRate: f.lr as number,
    seed: f.seed as number,
    data: {
      trainCount: dopts.trainCount,
      valCount: dopts.valCount,
      testFraction: dopts.testFraction,
      valFraction: dopts.valFraction,
    },
    augment: augmentOf(f),
    ...(f["lr-schedule"] === "cosine" ? { lrSchedule: "cosine" as const } : {}),
    ...(start.parent ? { warmStart: { from: start.parent.spec, lineage: start.lineage } } : {}),
  };
}

/** The engine line of the log and of manifest.training.engine. */
function engineDescription(f: Flags, tfjs: string): string {
  if (f.engine === "tfjs") return tfjs;
  return `onnxruntime training graph${
    f.engine === "auto" ? " (auto: tfjs if it cannot be built)" : ""
  }, ${f["ort-threads"]} thread(s)${
    (f.lanes as number) > 1 ? ` x ${f.lanes} lanes` : ""
  } (tfjs ${tfjs} for evaluation/export)`;
}

/** trainVae under a Ctrl-C handler: the first Ctrl-C stops after the step, with a checkpoint. */
async function runTraining(
  f: Flags,
  cfg: TrainConfig,
  start: Start,
  ckpt: string,
  log: (s: string) => void,
) {
  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(130); // second Ctrl-C: leave now (the last checkpoint is intact)
    stop = true;
    process.stderr.write(
      "\nCtrl-C: finishing this step and saving a checkpoint (Ctrl-C again to quit at once)\n",
    );
  };
  process.on("SIGINT", onSigint);
  const parent = start.parent;
  try {
    return await trainVae(cfg, start.train, {
      val: start.data.val,
      checkpointPath: ckpt,
      resumeFrom: f.resume as string | undefined,
      init: parent ? (m) => initFromParent(m, parent) : undefined,
      shouldStop: () => stop,
      progress: f.progress as boolean,
      log,
      engine: f.engine as EngineChoice,
      ortThreads: f["ort-threads"] as number,
      ortLanes: f.lanes as number,
    });
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/** Bundle, lineage and checkpoint, novelty, int8 and publish after a finished training run. */
async function exportRun(
  f: Flags,
  r: { models: VaeModels; config: TrainConfig; history: EpochRecord[] },
  data: TrainingData,
  lineage: Lineage,
  dir: string,
  log: (s: string) => void,
  extra: Record<string, unknown>,
): Promise<void> {
  const samples = f["samples-per-class"] as number;
  const manifest = await exportBundle(
    r.models,
    r.config,
    data,
    data.record,
    dir,
    f.name as string,
    log,
    extra,
    samples,
  );
  if (!manifest) return;
  const ck = f["bundle-checkpoint"] !== false
    ? bundleCheckpoint(r.models, r.config, r.history)
    : null;
  await addLineage(dir, lineage, ck);
  await calibrateExport(dir, data.train, log);
  if (f.int8) await quantizeBundle(dir, data, Math.min(2000, data.train.count), log);
  if (f.publish) {
    const { publish } = await import("./publish.ts");
    const p = await publish(dir, { registry: f.publish as string, gate: { log } });
    log(`published ${p.name}@${p.version} to ${p.dir}; CURRENT was ${p.previous ?? "none"}`);
  }
}

async function cmdTrain(args: string[]): Promise<number> {
  const { flags: f, positional } = parseFlags(args, TRAIN_FLAGS, process.env);
  if (f.help) {
    console.log(formatHelp(USAGE, TRAIN_FLAGS));
    return 0;
  }
  if (positional.length) throw new FlagError(`Unexpected argument(s): ${positional.join(" ")}`);
  const log = (s: string) => process.stderr.write(s + "\n");
  const tfjs = await initEngine({
    backend: f.backend as "auto",
    threads: f.threads as number,
    log,
  });
  const resumed = f.resume ? loadCheckpoint<TrainConfig>(f.resume as string).header.config : null;
  const start = await startOf(f, resumed, log);
  const cfg = trainConfig(f, start);
  const outDir = resolve((f.out as string | undefined) ?? join("runs", timestamp()));
  mkdirSync(outDir, { recursive: true });
  const ckpt = join(outDir, "checkpoint.bin");
  const engine = { ...tfjs, description: engineDescription(f, tfjs.description) };
  const { train, data } = start;
  log(
    `training on ${train.count} images of ${data.labels.length} classes${
      data.val ? `, validating on ${data.val.count}` : ""
    }, testing on ${data.test.count}; engine ${engine.description}; run dir ${outDir}`,
  );
  const t0 = performance.now();
  const result = await runTraining(f, cfg, start, ckpt, log);
  writeFileSync(
    join(outDir, "history.json"),
    JSON.stringify({ config: result.config, engine, history: result.history }, null, 2),
  );
  if (result.stopped) {
    log(`resume with: deno task train -- --resume ${ckpt} --out ${outDir}`);
    return 130;
  }
  const seconds = (performance.now() - t0) / 1000;
  log(`trained in ${seconds.toFixed(1)} s; checkpoint ${ckpt}`);
  if (f.export) {
    const extra = { engine: engine.description, seconds };
    await exportRun(f, result, data, start.lineage, join(outDir, "bundle"), log, extra);
  } else if (f.publish) {
    log("--publish needs the exported bundle; it is skipped with --no-export");
  }
  return 0;
}

/**
 * The common start of the commands that work from a finished checkpoint (export, recon):
 * flags, help, the engine, the data and the checkpoint's models. Null when --help was asked.
 */
async function fromCheckpoint<S extends typeof EXPORT_FLAGS | typeof RECON_FLAGS>(
  cmd: string,
  args: string[],
  specs: S,
  outWhat: string,
) {
  const { flags: f } = parseFlags(args, specs, process.env);
  if (f.help) {
    console.log(formatHelp(USAGE, specs));
    return null;
  }
  if (!f.checkpoint || !f.out) {
    throw new FlagError(`${cmd} needs --checkpoint <file> and --out <${outWhat}>`);
  }
  const log = (s: string) => process.stderr.write(s + "\n");
  await initEngine({ backend: f.backend as "auto", threads: f.threads as number, log });
  const saved = loadCheckpoint<TrainConfig>(f.checkpoint as string).header.config;
  const data = await loadTrainingData(dataPath(f), dataOptions(f, saved.data, saved.seed), log);
  // Resuming with restoreOnly rebuilds the models and trains no further step.
  const r = await trainVae({ epochs: 0 } as TrainConfig, data.train, {
    resumeFrom: f.checkpoint as string,
    restoreOnly: true,
    progress: false,
    log,
  });
  return { f, log, data, ...r };
}

async function cmdExport(args: string[]): Promise<number> {
  const r = await fromCheckpoint("export", args, EXPORT_FLAGS, "dir");
  if (!r) return 0;
  const { f, log, data } = r;
  const lineage = r.config.warmStart?.lineage ?? lineageOf(data, null, null);
  await exportRun(f, r, data, lineage, resolve(f.out as string), log, {});
  return 0;
}

async function cmdRecon(args: string[]): Promise<number> {
  const r = await fromCheckpoint("recon", args, RECON_FLAGS, "png");
  if (!r) return 0;
  const { f, log, data, models, config } = r;
  // Two test images of each class, in class order, so every class shows up in the grid.
  const picks: number[] = [];
  const K = Math.min(10, data.labels.length);
  for (let c = 0; c < K; c++) {
    for (let i = 0, k = 0; i < data.test.count && k < 2; i++) {
      if (data.test.labels[i] === c) picks.push(i), k++;
    }
  }
  const rows = [0, 1].flatMap((parity) => {
    const sub = take(data.test, picks.filter((_, j) => j % 2 === parity));
    return [
      normalizePixels(sub.images),
      reconstruct(models.encoder, models.decoder, config.vae.latent, sub.images, sub.count),
    ];
  });
  writeFileSync(resolve(f.out as string), gridPng(rows, K));
  const elbo = evaluateVae(models, config.vae.latent, data.test);
  log(
    `test -ELBO ${elbo.elbo.toFixed(2)} nats (rec ${elbo.rec.toFixed(2)}, KL ${
      elbo.kl.toFixed(2)
    }) on ${data.test.count} test images; grid written to ${f.out}`,
  );
  return 0;
}

async function cmdCalibrateNovelty(args: string[]): Promise<number> {
  const { flags: f, positional } = parseFlags(args, NOVELTY_FLAGS, process.env);
  if (f.help) {
    console.log(formatHelp(USAGE, NOVELTY_FLAGS));
    return 0;
  }
  if (positional.length !== 1) throw new FlagError("calibrate-novelty needs one <bundle-dir>");
  const { calibrateBundle } = await import("./novelty.ts");
  const data = loadFashionMnist(resolveDataDir(f["data-dir"] as string | undefined));
  const cal = await calibrateBundle(resolve(positional[0]), data.train, {
    thresholdPercentile: f.percentile as number,
  });
  process.stderr.write(
    `novelty calibrated: Gaussians on ${cal.fit.images} images, percentiles of ${cal.heldOut.images} held-out images; threshold (${cal.threshold.percentile}th percentile) ${
      cal.threshold.score.toFixed(3)
    }\n`,
  );
  return 0;
}

/** `samples <bundle-dir>`: writes samples.json from the dataset's evaluation split. */
async function cmdSamples(args: string[]): Promise<number> {
  const { flags: f, positional } = parseFlags(args, SAMPLES_FLAGS, process.env);
  if (f.help) {
    console.log(formatHelp(USAGE, SAMPLES_FLAGS));
    return 0;
  }
  if (positional.length !== 1) throw new FlagError("samples needs one <bundle-dir>");
  const log = (s: string) => process.stderr.write(s + "\n");
  const { readManifest } = await import("../bundle/mod.ts");
  const { addSamples } = await import("./bundle_samples.ts");
  const dir = resolve(positional[0]);
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

export async function main(argvIn: string[]): Promise<number> {
  // `deno task train -- ...` passes the "--" through.
  const argv = argvIn[0] === "--" ? argvIn.slice(1) : argvIn;
  const [cmd, ...rest] = argv[0] && !argv[0].startsWith("-") ? argv : ["train", ...argv];
  try {
    if (cmd === "train") return await cmdTrain(rest);
    if (cmd === "export") return await cmdExport(rest);
    if (cmd === "recon") return await cmdRecon(rest);
    if (cmd === "calibrate-novelty") return await cmdCalibrateNovelty(rest);
    if (cmd === "quantize") return await cmdQuantize(rest);
    if (cmd === "samples") return await cmdSamples(rest);
    if (cmd === "publish") {
      const { publishMain, reportPublishError } = await import("./publish.ts");
      const log = (s: string) => process.stderr.write(s + "\n");
      return await publishMain(rest, log, process.env).catch((e) => reportPublishError(e, log));
    }
    throw new FlagError(`Unknown command "${cmd}"\n${USAGE}`);
  } catch (e) {
    if (
      e instanceof FlagError || e instanceof DataError || e instanceof DatasetError ||
      e instanceof WarmStartError
    ) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    // A plain message, not a rethrow: the wasm runtime's handler would print its whole source.
    console.error(
      `error: ${(e as Error).message}${process.env.DEBUG ? `\n${(e as Error).stack}` : ""}`,
    );
    return 1;
  }
}

if (
  import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("trainer/cli.ts")
) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
