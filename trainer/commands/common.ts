/**
 * What the trainer's subcommands share: the dataset flags and the flags several commands take
 * (one definition each, so a help text reads the same everywhere), how the data flags become
 * data options, the stderr log, and the two usual starts of a command: from one bundle
 * directory, or from a finished checkpoint's models.
 */
import { resolve } from "node:path";
import {
  choiceFlag,
  FlagError,
  type FlagSpecs,
  formatHelp,
  type ParsedFlags,
  parseFlags,
} from "../../common/flags.ts";
import { SAMPLES_PER_CLASS } from "../../bundle/samples.ts";
import { DEFAULT_DATA_DIR } from "../data.ts";
import { type DataOptions, loadTrainingData } from "../datasets/mod.ts";
import { loadCheckpoint, restoreWeights } from "../checkpoint.ts";
import { initEngine } from "../engine/tfjs_backend.ts";
import { buildVaeModels, type EpochRecord, type TrainConfig } from "../train.ts";

/** A subcommand: its arguments (after the command's name) and the CLI's usage text in, exit code out. */
export type Command = (args: string[], usage: string) => Promise<number>;

export type Flags = Record<string, unknown>;

/** Progress and results go to stderr, so stdout holds only what was asked for (--help). */
export const log = (s: string) => process.stderr.write(s + "\n");

/**
 * Defaults are the recipe of the committed default bundle: latent 16 (best served accuracy
 * among the sizes measured, see README), MLP head trained jointly with weight 100 on its
 * cross-entropy, all 60,000 training images.
 */
export const DATA_FLAGS = {
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
  "on-bad-image": choiceFlag(
    ["fail", "skip"],
    "an unreadable, truncated or non-image file stops the run (fail) or is left out (skip)",
  ),
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

/** Flags that train and export take alike (recon takes backend and threads too). */
export const SHARED_FLAGS = {
  name: { type: "string", default: "fashion-vae", help: "model name written into the bundle" },
  backend: choiceFlag(["auto", "tensorflow", "wasm", "cpu"], "tfjs backend"),
  threads: { type: "int", default: 1, help: "wasm threads" },
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

/** --data, else --data-dir / FASHION_MNIST_DIR, else the Fashion-MNIST default. */
export function dataPath(f: Flags): string {
  return (f.data as string | undefined) ?? (f["data-dir"] as string | undefined) ??
    DEFAULT_DATA_DIR;
}

/** The data flags, with what a checkpoint recorded (its split) taking precedence. */
export function dataOptions(f: Flags, saved?: TrainConfig["data"], seed?: number): DataOptions {
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

/**
 * The start of a command on one bundle directory (calibrate-novelty, quantize, samples): the
 * flags and the resolved directory; null when --help was asked (the help is printed).
 * `wrongCount` is the error for any other number of positional arguments.
 */
export function bundleCommand<S extends FlagSpecs>(
  args: string[],
  specs: S,
  usage: string,
  wrongCount: (n: number) => string,
): { f: ParsedFlags<S>; dir: string } | null {
  const { flags: f, positional } = parseFlags(args, specs, process.env);
  if (f.help) {
    console.log(formatHelp(usage, specs));
    return null;
  }
  if (positional.length !== 1) throw new FlagError(wrongCount(positional.length));
  return { f, dir: resolve(positional[0]) };
}

/**
 * The start of the commands that work from a finished checkpoint (export, recon): flags, help,
 * the engine, the data the checkpoint was trained on and its models, rebuilt from the
 * checkpoint's own config (no training loop runs). Null when --help was asked.
 */
export async function fromCheckpoint<S extends FlagSpecs>(
  cmd: string,
  args: string[],
  specs: S,
  usage: string,
  outWhat: string,
) {
  const { flags: f } = parseFlags(args, specs, process.env);
  if (f.help) {
    console.log(formatHelp(usage, specs));
    return null;
  }
  if (!f.checkpoint || !f.out) {
    throw new FlagError(`${cmd} needs --checkpoint <file> and --out <${outWhat}>`);
  }
  await initEngine({ backend: f.backend as "auto", threads: f.threads as number, log });
  const ck = loadCheckpoint<TrainConfig>(f.checkpoint as string);
  const config = ck.header.config;
  const data = await loadTrainingData(dataPath(f), dataOptions(f, config.data, config.seed), log);
  const models = buildVaeModels(config);
  const { encoder, decoder, head } = models;
  restoreWeights(ck, head ? { encoder, decoder, head } : { encoder, decoder });
  return { f, data, models, config, history: ck.header.history as EpochRecord[] };
}
