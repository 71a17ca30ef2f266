/**
 * The experiment's configuration: one typed object holding everything that decides a number in
 * the report (architectures from ../model.ts, epochs, steps, subset seeds, how many test images),
 * two presets (the full study and a minutes-long --quick smoke run), the CLI's flag specs and
 * the function that turns parsed flags into a config. A hash of the settings that change results
 * guards cached cells and cached VAEs against silently mixing configurations.
 */
import { createHash } from "node:crypto";
import { FlagError, type FlagSpecs } from "../../common/flags.ts";
import { type FitOptions, LOGISTIC_FIT, MLP_FIT } from "../classifiers.ts";
import { CNN_FIT, type CnnFit } from "../cnn_fit.ts";
import {
  DEFAULT_HEAD,
  type HeadConfig,
  REFERENCE_VAE,
  TINY_VAE,
  type VaeConfig,
} from "../model.ts";
import { type CnnConfig, DEFAULT_CNN, TINY_CNN } from "../model_cnn.ts";
import { ENGINE_CHOICES } from "../engine/choice.ts";
import { DATA_DIR_ENV } from "../../common/fashion_mnist.ts";
import { maxLabelled, VALIDATION_COUNT } from "./select.ts";

export interface ExperimentConfig {
  mode: "full" | "quick";
  /** Latent sizes of Table 1 (one VAE each). */
  latents: number[];
  /** Labelled samples behind Table 1 (the study tuned the latent on 100). */
  table1Samples: number;
  /** Latent of Table 2 (the study's choice, 4). */
  table2Latent: number;
  /** Labelled sample counts of Table 2. */
  samples: number[];
  /** Cells with at most seedMaxSamples samples are repeated over this many subsets. */
  seeds: number;
  seedMaxSamples: number;
  /** Subset k of size N is stratifiedSubset(train, N, dataSeed + k), shared by every classifier. */
  dataSeed: number;
  vae: {
    /** Architecture without its latent size (set per Table 1 row). */
    arch: Omit<VaeConfig, "latent">;
    epochs: number;
    batchSize: number;
    learningRate: number;
    /** Unlabelled training images the VAE sees (0 = all 60,000). */
    trainCount: number;
  };
  heads: { logistic: HeadConfig; mlp: HeadConfig; logisticFit: FitOptions; mlpFit: FitOptions };
  cnn: { arch: CnnConfig; fit: CnnFit };
  /** Train the pixel CNN baseline (off: latent studies only, e.g. longer VAE training). */
  withCnn: boolean;
  /** Beyond the study: the few-label heads of ./few_label.ts (kNN, label spreading). */
  withFewLabel: boolean;
  fewLabel: {
    /** Cells with at most this many labels get the few-label heads. */
    maxSamples: number;
    /** Training images in the label-spreading graph besides the labelled ones (0 = all 60,000). */
    graphCount: number;
  };
  /** Test images scored (0 = all 10,000; the quick run uses the first few). */
  testCount: number;
  /** The CNN's train accuracy is measured on at most this many of its labelled samples (cost). */
  trainAccMax: number;
  /** Training samples drawn in the 2-D latent scatter (figure 1). */
  scatterCount: number;
  scatterLatent: number;
  /** Latent sizes whose reconstructions make figure 2. */
  reconLatents: number[];
  /** Worker processes; each runs one job at a time on one wasm thread. */
  jobs: number;
  /** VAEs per latent to pick from on a validation split (./select.ts); absent = 1, no choice. */
  vaeCandidates?: number;
}

/** The study's rows. 60,000 is added: the study stopped at 50,000 for memory reasons only. */
export const FULL_LATENTS = [2, 4, 9, 16, 25, 32];
export const FULL_SAMPLES = [100, 1000, 2000, 5000, 10000, 20000, 50000, 60000];

/**
 * The full study, sized to finish within 90 minutes on 2 cores with 2 workers (check with
 * --estimate). Budget, in steps of batch 128 (what each part costs: docs/performance.md).
 * - VAE: 4 epochs of all 60,000 images per latent (1,872 Adam steps): the latent's class
 *   structure is in place by then; more epochs mostly sharpen reconstructions. The VAEs are
 *   most of the run (on the tfjs engine consider --vae-epochs 3 if the estimate is tight).
 * - CNN: batch 128, 13 epochs bounded to 600..6,000 steps (12.8 epochs of 60,000), Adam peak
 *   2e-3 with cosine decay (the mean rate of a cosine is half its peak; a constant rate keeps
 *   bouncing instead of settling) and +-1 px shifts, which also tame overfitting at small N
 *   (+-2 px underfit in short runs). At least 600 steps, so the small-label cells train to
 *   convergence (fewer left them under the study's figures; reports/).
 * - Heads: the project's LOGISTIC_FIT / MLP_FIT (a step costs milliseconds).
 */
export const FULL_CONFIG: Readonly<ExperimentConfig> = Object.freeze({
  mode: "full",
  latents: FULL_LATENTS,
  table1Samples: 100,
  table2Latent: 4,
  samples: FULL_SAMPLES,
  seeds: 3,
  seedMaxSamples: 2000,
  dataSeed: 1000,
  vae: {
    arch: withoutLatent(REFERENCE_VAE),
    epochs: 4,
    batchSize: 128,
    learningRate: 1e-3,
    trainCount: 0,
  },
  heads: {
    logistic: { ...DEFAULT_HEAD, kind: "logistic" },
    mlp: { ...DEFAULT_HEAD, kind: "mlp" },
    logisticFit: { ...LOGISTIC_FIT },
    mlpFit: { ...MLP_FIT },
  },
  cnn: {
    arch: { ...DEFAULT_CNN },
    fit: { ...CNN_FIT },
  },
  withCnn: true,
  withFewLabel: true,
  fewLabel: { maxSamples: 2000, graphCount: 0 },
  testCount: 0,
  trainAccMax: 5000,
  scatterCount: 5000,
  scatterLatent: 2,
  reconLatents: [2, 4, 25],
  jobs: 2,
}) as ExperimentConfig;

/**
 * The smoke run: tiny architectures (../model.ts TINY_*), 3,000 unlabelled images, a few
 * hundred steps per classifier, 2,000 test images. It exercises every code path and output in
 * a minute or two; its numbers say nothing about the study.
 */
export const QUICK_CONFIG: Readonly<ExperimentConfig> = Object.freeze({
  ...FULL_CONFIG,
  mode: "quick",
  latents: [2, 4, 25],
  samples: [100, 1000],
  seeds: 2,
  vae: {
    arch: withoutLatent(TINY_VAE),
    epochs: 2,
    batchSize: 64,
    learningRate: 3e-3,
    trainCount: 3000,
  },
  heads: {
    ...FULL_CONFIG.heads,
    logisticFit: { ...LOGISTIC_FIT, minSteps: 150, maxSteps: 300 },
    mlpFit: { ...MLP_FIT, minSteps: 150, maxSteps: 300 },
  },
  cnn: {
    arch: { ...TINY_CNN },
    fit: {
      epochs: 2,
      minSteps: 30,
      maxSteps: 60,
      batchSize: 64,
      learningRate: 3e-3,
      shift: 1,
      seed: CNN_FIT.seed,
    },
  },
  fewLabel: { ...FULL_CONFIG.fewLabel, graphCount: 3000 },
  testCount: 2000,
  trainAccMax: 1000,
  scatterCount: 2000,
}) as ExperimentConfig;

function withoutLatent(v: VaeConfig): Omit<VaeConfig, "latent"> {
  const { latent: _drop, ...rest } = v;
  return rest;
}

export const EXPERIMENT_FLAGS = {
  out: {
    type: "string",
    help:
      "run directory (results.json, report.md, figures); default runs/experiments-<timestamp>. Re-use it to resume",
  },
  quick: {
    type: "boolean",
    default: false,
    help: "minutes-long smoke run: tiny models, subsets and steps",
  },
  latents: {
    type: "string",
    help: `latent sizes of Table 1 (default ${FULL_LATENTS.join(",")}; quick ${
      QUICK_CONFIG.latents.join(",")
    })`,
  },
  samples: {
    type: "string",
    help: `labelled sample counts of Table 2 (default ${FULL_SAMPLES.join(",")}; quick ${
      QUICK_CONFIG.samples.join(",")
    })`,
  },
  seeds: {
    type: "int",
    help:
      `subsets averaged for cells of <= ${FULL_CONFIG.seedMaxSamples} samples (default ${FULL_CONFIG.seeds}; quick ${QUICK_CONFIG.seeds})`,
  },
  cnn: {
    type: "boolean",
    default: true,
    help: "train the pixel CNN baseline (--no-cnn: VAE heads only)",
  },
  "few-label": {
    type: "boolean",
    default: true,
    help:
      `beyond the study: kNN and label-spreading heads on cells of <= ${FULL_CONFIG.fewLabel.maxSamples} labels (--no-few-label: the study's heads only)`,
  },
  "graph-count": {
    type: "int",
    help:
      `unlabelled training images in the label-spreading graph (default all 60,000; quick ${QUICK_CONFIG.fewLabel.graphCount})`,
  },
  "cnn-min-steps": {
    type: "int",
    help: `fewest CNN steps per cell, however small N (default ${FULL_CONFIG.cnn.fit.minSteps})`,
  },
  "vae-epochs": {
    type: "int",
    help:
      `VAE training epochs per latent (default ${FULL_CONFIG.vae.epochs}; quick ${QUICK_CONFIG.vae.epochs})`,
  },
  "table2-latent": {
    type: "int",
    help: `latent of Table 2's rows (default ${FULL_CONFIG.table2Latent}, the study's choice)`,
  },
  "vae-candidates": {
    type: "int",
    default: 1,
    help:
      `VAEs per latent differing only in seed; the one whose latent classifies a ${VALIDATION_COUNT}-image validation split of train best is used (1: no choice, nothing held out)`,
  },
  "cache-dir": {
    type: "string",
    default: "runs/experiments-cache",
    help: "where trained VAEs are cached as checkpoints, shared by runs",
  },
  "data-dir": {
    type: "string",
    help: "directory with the four Fashion-MNIST IDX .gz files",
    env: DATA_DIR_ENV,
  },
  jobs: { type: "int", help: `worker processes run in parallel (default ${FULL_CONFIG.jobs})` },
  backend: {
    type: "string",
    default: "auto",
    choices: ["auto", "tensorflow", "wasm", "cpu"],
    help: "tfjs backend of the workers",
  },
  threads: { type: "int", default: 1, help: "wasm threads per worker" },
  engine: {
    type: "string",
    default: "auto",
    choices: ENGINE_CHOICES,
    help:
      "VAE and CNN training steps on tfjs or as one onnxruntime graph each (auto: ort when it works; same results up to rounding and dropout draws)",
  },
  "report-only": {
    type: "boolean",
    default: false,
    help:
      "redraw report.md and the figures of --out from its results.json (and notes.md, if present); trains nothing",
  },
  estimate: {
    type: "boolean",
    default: false,
    help: "measure step speeds, print the plan and its time estimate, then exit",
  },
} satisfies FlagSpecs;

export function parseIntList(name: string, raw: string): number[] {
  const parts = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const out = parts.map((s) => Number(s));
  if (out.length === 0 || out.some((v) => !Number.isInteger(v) || v < 1)) {
    throw new FlagError(
      `--${name} takes a comma-separated list of positive integers, got "${raw}"`,
    );
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/** Parsed flags -> config: the preset, then each given flag on top. */
export function configFromFlags(
  f: {
    quick?: unknown;
    latents?: unknown;
    samples?: unknown;
    seeds?: unknown;
    "vae-epochs"?: unknown;
    jobs?: unknown;
    cnn?: unknown;
    "cnn-min-steps"?: unknown;
    "few-label"?: unknown;
    "graph-count"?: unknown;
    "vae-candidates"?: unknown;
    "table2-latent"?: unknown;
  },
): ExperimentConfig {
  const base = f.quick ? QUICK_CONFIG : FULL_CONFIG;
  const cfg: ExperimentConfig = structuredClone(base) as ExperimentConfig;
  if (f.latents !== undefined) cfg.latents = parseIntList("latents", f.latents as string);
  if (f.samples !== undefined) cfg.samples = parseIntList("samples", f.samples as string);
  if (f.seeds !== undefined) cfg.seeds = positive("seeds", f.seeds as number);
  if (f["vae-epochs"] !== undefined) {
    cfg.vae.epochs = positive("vae-epochs", f["vae-epochs"] as number);
  }
  if (f.jobs !== undefined) cfg.jobs = positive("jobs", f.jobs as number);
  if (f["table2-latent"] !== undefined) {
    cfg.table2Latent = positive("table2-latent", f["table2-latent"] as number);
  }
  if (f.cnn === false) cfg.withCnn = false;
  if (f["few-label"] === false) cfg.withFewLabel = false;
  if (f["graph-count"] !== undefined) {
    cfg.fewLabel.graphCount = positive("graph-count", f["graph-count"] as number);
  }
  if (f["cnn-min-steps"] !== undefined) {
    cfg.cnn.fit.minSteps = positive("cnn-min-steps", f["cnn-min-steps"] as number);
  }
  const k = f["vae-candidates"] === undefined
    ? 1
    : positive("vae-candidates", f["vae-candidates"] as number);
  if (k > 1) {
    cfg.vaeCandidates = k;
    // The default rows end at all 60,000 images; the held-out validation images leave fewer.
    if (f.samples === undefined) cfg.samples = cfg.samples.filter((n) => n <= maxLabelled(cfg));
  }
  const tooMany = cfg.samples.filter((n) => n > maxLabelled(cfg));
  if (tooMany.length) {
    throw new FlagError(
      `--samples: ${tooMany.join(", ")} exceed the ${maxLabelled(cfg)} labelled training images${
        k > 1 ? ` (${VALIDATION_COUNT} are held out to pick the VAE)` : ""
      }`,
    );
  }
  return cfg;
}

function positive(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) {
    throw new FlagError(`--${name} must be a positive integer, got ${v}`);
  }
  return v;
}

/** Latents that need a VAE: Table 1's, Table 2's and figure 1's (figure 2 uses what exists). */
export function vaeLatents(cfg: ExperimentConfig): number[] {
  return [...new Set([...cfg.latents, cfg.table2Latent])].sort((a, b) => a - b);
}

/** Seeds of a cell with N samples: several subsets for small N, one otherwise. */
export function seedsFor(cfg: ExperimentConfig, samples: number): number {
  return samples <= cfg.seedMaxSamples ? cfg.seeds : 1;
}

export function shortHash(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 12);
}

/**
 * Hash of everything that changes a cell's numbers, but not of the row lists, seeds count,
 * whether the CNN or the few-label heads run, or jobs: a resumed run may add rows, it must not reuse cells made under other settings.
 */
export function resultsHash(cfg: ExperimentConfig): string {
  const { latents: _l, samples: _s, seeds: _k, jobs: _j, withCnn: _c, withFewLabel: _f, ...rest } =
    cfg;
  return shortHash(rest);
}
