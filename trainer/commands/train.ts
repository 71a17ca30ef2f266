/**
 * `train [flags]` (the default command): trains the VAE and its joint head on the chosen engine,
 * checkpoints every epoch, and exports a bundle at the end (./export.ts exportRun). The first
 * Ctrl-C stops after the current step and saves a checkpoint that `--resume` continues
 * bit-for-bit.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { choiceFlag, FlagError, type FlagSpecs, parseCommandFlags } from "../../common/flags.ts";
import { AUGMENT_FLAGS, augmentOf } from "../augment.ts";
import { loadCheckpoint } from "../checkpoint.ts";
import { ENGINE_CHOICES, type EngineChoice, plannedEngine } from "../engine/choice.ts";
import { initEngine } from "../engine/tfjs_backend.ts";
import {
  DEFAULT_HEAD,
  type HeadConfig,
  REFERENCE_VAE,
  TINY_VAE,
  type VaeConfig,
  vaeConfig,
  widenEncoder,
} from "../model.ts";
import { type TrainConfig, trainVae } from "../train.ts";
import { initFromParent } from "../warm_start.ts";
import { DATA_FLAGS, type Flags, log, SHARED_FLAGS } from "./common.ts";
import { exportRun } from "./export.ts";
import { type Start, startOf } from "./train_start.ts";

/** The default recipe's length (its measurements: README, "Levers toward 93.5%"). */
const DEFAULT_EPOCHS = 20;

const TRAIN_FLAGS = {
  ...DATA_FLAGS,
  latent: { type: "int", default: 16, help: "latent dimensions L" },
  arch: choiceFlag(
    ["reference", "tiny"],
    "VAE architecture: the reference one, or a tiny one (a few thousand weights, for tests)",
  ),
  width: {
    type: "number",
    default: 2,
    help:
      "encoder width factor: conv filters and hidden dense units times this (2: 64/128/128, 256)",
  },
  "batch-norm": {
    type: "boolean",
    default: false,
    help:
      "batch normalisation after each encoder conv (trains on the tfjs engine; folded into the convs at export)",
  },
  epochs: {
    type: "int",
    help: `training epochs (default ${DEFAULT_EPOCHS}; with --resume, the checkpoint's)`,
  },
  "batch-size": { type: "int", default: 128, help: "images per Adam step" },
  lr: { type: "number", default: 1e-3, help: "Adam learning rate" },
  seed: { type: "int", default: 1, help: "seed for weights, shuffling and noise" },
  head: choiceFlag(
    ["mlp", "logistic", "none"],
    "classifier head trained jointly with the VAE (none = pure VAE)",
  ),
  "head-input": choiceFlag(
    ["hidden", "mu"],
    "what the head reads: the encoder's hidden features (its moments layer's input), or the latent mean mu",
  ),
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
  "lr-schedule": choiceFlag(
    ["cosine", "constant"],
    "learning rate: cosine-decayed from --lr to 0 over the run, or constant",
  ),
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
  name: SHARED_FLAGS.name,
  backend: SHARED_FLAGS.backend,
  threads: SHARED_FLAGS.threads,
  engine: choiceFlag(
    ENGINE_CHOICES,
    "training steps on the tfjs backend, or as one onnxruntime graph (~3-5x faster; evaluation/export stay on tfjs)",
  ),
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
  int8: SHARED_FLAGS.int8,
  "samples-per-class": SHARED_FLAGS["samples-per-class"],
} satisfies FlagSpecs;

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z");
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
    : {
      ...DEFAULT_HEAD,
      kind: headKind as HeadConfig["kind"],
      classes: K,
      ...(f["head-input"] === "hidden" ? { input: "hidden" as const } : {}),
    };
  const { dopts } = start;
  return {
    vae: pc?.vae ?? vaeConfig(
      {
        latent: f.latent as number,
        seed: f.seed as number,
        // Recorded only when on, so a run without it keeps the config (and bundle) it had.
        ...(f["batch-norm"] ? { batchNorm: true } : {}),
      },
      widenEncoder(f.arch === "tiny" ? TINY_VAE : REFERENCE_VAE, f.width as number),
    ),
    head,
    classWeight: head ? (f["class-weight"] as number) : 0,
    epochs: (f.epochs as number | undefined) ?? (f.resume ? 0 : DEFAULT_EPOCHS),
    batchSize: f["batch-size"] as number,
    learningRate: f.lr as number,
    seed: f.seed as number,
    data: {
      trainCount: dopts.trainCount,
      valCount: dopts.valCount,
      testFraction: dopts.testFraction,
      valFraction: dopts.valFraction,
    },
    // Mirroring keeps Fashion-MNIST's labels; own data (--data) is not assumed to.
    augment: augmentOf(f, f.data === undefined),
    ...(f["lr-schedule"] === "cosine" ? { lrSchedule: "cosine" as const } : {}),
    ...(start.parent ? { warmStart: { from: start.parent.spec, lineage: start.lineage } } : {}),
  };
}

/** The engine line of the log and of manifest.training.engine. */
function engineDescription(f: Flags, vae: VaeConfig, tfjs: string): string {
  if (plannedEngine(f.engine as EngineChoice, vae) === "tfjs") return tfjs;
  return `onnxruntime training graph${
    f.engine === "auto" ? " (auto: tfjs if it cannot be built)" : ""
  }, ${f["ort-threads"]} thread(s)${
    (f.lanes as number) > 1 ? ` x ${f.lanes} lanes` : ""
  } (tfjs ${tfjs} for evaluation/export)`;
}

/** trainVae under a Ctrl-C handler: the first Ctrl-C stops after the step, with a checkpoint. */
async function runTraining(f: Flags, cfg: TrainConfig, start: Start, ckpt: string) {
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

export async function cmdTrain(args: string[], usage: string): Promise<number> {
  const f = parseCommandFlags(args, TRAIN_FLAGS, usage, process.env);
  if (!f) return 0;
  const tfjs = await initEngine({
    backend: f.backend as "auto",
    threads: f.threads as number,
    log,
  });
  const resumed = f.resume ? loadCheckpoint<TrainConfig>(f.resume as string).header.config : null;
  const start = await startOf(f, resumed);
  const cfg = trainConfig(f, start);
  // A resumed run or a warm start keeps its recorded architecture; asking for another is an error.
  const arch = resumed?.vae ?? cfg.vae;
  if (f["batch-norm"] && !arch.batchNorm) {
    throw new FlagError(
      `--batch-norm: the ${resumed ? "checkpoint" : "parent model"} has no batch norm, and a ${
        resumed ? "resumed run" : "warm start"
      } keeps its architecture`,
    );
  }
  const outDir = resolve((f.out as string | undefined) ?? join("runs", timestamp()));
  mkdirSync(outDir, { recursive: true });
  const ckpt = join(outDir, "checkpoint.bin");
  const engine = { ...tfjs, description: engineDescription(f, arch, tfjs.description) };
  const { train, data } = start;
  log(
    `training on ${train.count} images of ${data.labels.length} classes${
      data.val ? `, validating on ${data.val.count}` : ""
    }, testing on ${data.test.count}; engine ${engine.description}; run dir ${outDir}`,
  );
  const t0 = performance.now();
  const result = await runTraining(f, cfg, start, ckpt);
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
    await exportRun(f, result, data, start.lineage, join(outDir, "bundle"), extra);
  } else if (f.publish) {
    log("--publish needs the exported bundle; it is skipped with --no-export");
  }
  return 0;
}
