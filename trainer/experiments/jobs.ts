/**
 * The units of work a worker process runs, and what they report back. A "latent" job trains (or
 * loads from the cache) the unsupervised VAE of one latent size, freezes it, and trains the
 * logistic and MLP heads of its cells on latent mu of stratified labelled subsets; it also
 * yields figure data (2-D scatter, reconstructions) and the test ELBO. A "cnn" job trains the
 * pixel-CNN baseline on one subset. `calibrate` times a few steps of each kind so the parent can
 * estimate the run before committing to it. Every cell is scored on the same test images.
 */
import * as tf from "@tensorflow/tfjs";
import { existsSync, mkdirSync } from "node:fs";
import { join, relative } from "node:path";
import { IMAGE_SIZE, PIXELS } from "../../common/labels.ts";
import { normalizePixels, toBytes } from "../../common/preprocess.ts";
import { loadCheckpoint } from "../checkpoint.ts";
import { accuracy, encodeMu, headSteps, predict, trainHead } from "../classifiers.ts";
import { type Split, stratifiedSubset, take } from "../data.ts";
import { reconstruct } from "../figures.ts";
import { TINY_VAE, type VaeConfig } from "../model.ts";
import { evaluateVae, type TrainConfig, trainVae } from "../train.ts";
import { trainPixelCnn } from "../cnn_fit.ts";
import { type ExperimentConfig, shortHash } from "./config.ts";
import type { CellResult, CellSpec, Results, VaeResult } from "./results.ts";
import { isFewLabel, runFewLabelCells } from "./few_label.ts";
import type { CandidateJob } from "./candidate.ts";
import { type CandidateScore, labelledIndices } from "./select.ts";
import type { TrainEngine } from "../engine/choice.ts";
import { encodeBase64 } from "../../common/base64.ts";

export interface LatentJob {
  kind: "latent";
  id: string;
  latent: number;
  cells: CellSpec[];
  scatter: boolean;
  recon: boolean;
  /** With --vae-candidates > 1: the candidate jobs this one waits for (ids)... */
  after?: string[];
  /** ...and the picked candidate, which the parent fills in when it dispatches the job. */
  candidate?: number;
}

export interface CnnJob {
  kind: "cnn";
  id: string;
  cell: CellSpec;
}

export type Job = LatentJob | CnnJob | CandidateJob;

/** Messages a job sends while it runs; the parent persists each one as it arrives. */
export type JobEvent =
  | { type: "cell"; cell: CellResult }
  | { type: "vae"; vae: VaeResult }
  | { type: "candidate"; score: CandidateScore }
  | { type: "scatter"; scatter: NonNullable<Results["figures"]["scatter"]> }
  | { type: "recon"; latent: number; pixels: string; testImages: string }
  | { type: "log"; line: string };

export interface JobContext {
  cfg: ExperimentConfig;
  train: Split;
  /** The scored test images (all 10,000, or the first testCount). */
  test: Split;
  /** The full test split: figure 2 shows its first 10 images whatever testCount is. */
  testFull: Split;
  /** Fingerprint of the training images, part of the VAE cache key. */
  dataId: string;
  cacheDir: string;
  /** Engine of the VAE's and the CNN's training steps (../train.ts TrainOptions.engine); heads use tfjs. */
  trainEngine: TrainEngine;
  emit: (e: JobEvent) => void;
}

export type { TrainEngine };

/** One image as the pixel CNN takes it (NHWC without the batch). */
export const CNN_INPUT = [IMAGE_SIZE, IMAGE_SIZE, 1];

/**
 * "auto" picks the onnxruntime training graph (several times faster per VAE step, same results up
 * to float rounding) when one tiny step of it works here, else tfjs; the reason is returned.
 */
export async function resolveTrainEngine(
  want: TrainEngine | "auto",
  train: Split,
): Promise<{ engine: TrainEngine; note: string }> {
  if (want !== "auto") return { engine: want, note: "as asked" };
  try {
    const r = await trainVae(
      {
        vae: { ...TINY_VAE },
        head: null,
        classWeight: 0,
        epochs: 1,
        batchSize: 16,
        learningRate: 1e-3,
        seed: 1,
      },
      take(train, Int32Array.from({ length: 16 }, (_, i) => i)),
      { progress: false, log: () => {}, engine: "ort" },
    );
    r.models.encoder.dispose();
    r.models.decoder.dispose();
    return { engine: "ort", note: "auto: onnxruntime training works here" };
  } catch (e) {
    return {
      engine: "tfjs",
      note: `auto: onnxruntime training unavailable (${(e as Error).message.split("\n")[0]})`,
    };
  }
}

/**
 * The VAE of a latent size; candidate k (--vae-candidates) differs from candidate 0, the
 * default VAE, only in its seed (initialisation, shuffle, sampling noise).
 */
export function vaeTrainConfig(cfg: ExperimentConfig, latent: number, candidate = 0): TrainConfig {
  const seed = cfg.vae.arch.seed + candidate;
  const vae: VaeConfig = { ...cfg.vae.arch, latent, seed };
  return {
    vae,
    head: null,
    classWeight: 0,
    epochs: cfg.vae.epochs,
    batchSize: cfg.vae.batchSize,
    learningRate: cfg.vae.learningRate,
    seed,
  };
}

/** The unlabelled images the VAE trains on: all of train, or a seeded stratified subset. */
export function vaeTrainSplit(cfg: ExperimentConfig, train: Split): Split {
  return cfg.vae.trainCount > 0 && cfg.vae.trainCount < train.count
    ? stratifiedSubset(train, cfg.vae.trainCount, cfg.dataSeed - 1)
    : train;
}

/** Cache file of a VAE: the name carries the latent; the hash, the config and data it came from. */
export function vaeCachePath(
  ctx: Pick<JobContext, "cfg" | "cacheDir" | "dataId">,
  latent: number,
  candidate = 0,
): string {
  const t = vaeTrainConfig(ctx.cfg, latent, candidate);
  return join(
    ctx.cacheDir,
    `vae-L${latent}-${shortHash({ t, trainCount: ctx.cfg.vae.trainCount, data: ctx.dataId })}.bin`,
  );
}

/**
 * Epochs a cached checkpoint has finished; 0 when absent or unreadable (a corrupt file is then
 * retrained from scratch and overwritten). Checkpoints are written at epoch ends only.
 */
export function cachedEpochs(path: string): number {
  if (!existsSync(path)) return 0;
  try {
    return loadCheckpoint<TrainConfig>(path).header.epoch;
  } catch {
    return 0;
  }
}

function headCfg(cfg: ExperimentConfig, c: CellSpec) {
  const kind = c.classifier === "logistic" ? "logistic" : "mlp";
  const head = kind === "logistic" ? cfg.heads.logistic : cfg.heads.mlp;
  const fit = kind === "logistic" ? cfg.heads.logisticFit : cfg.heads.mlpFit;
  // Each seed is another subset and another initialisation and shuffle.
  return { head: { ...head, seed: head.seed + c.seed }, fit: { ...fit, seed: fit.seed + c.seed } };
}

/** Gathers rows of a row-major [n * width] matrix. */
function gather(m: Float32Array, width: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * width);
  for (let i = 0; i < idx.length; i++) {
    out.set(m.subarray(idx[i] * width, (idx[i] + 1) * width), i * width);
  }
  return out;
}

/** Trains or loads the VAE of a latent size; an interrupted training resumes from its cache file. */
export async function obtainVae(ctx: JobContext, latent: number, candidate = 0) {
  const path = vaeCachePath(ctx, latent, candidate);
  mkdirSync(ctx.cacheDir, { recursive: true });
  const cfg = vaeTrainConfig(ctx.cfg, latent, candidate);
  const done = cachedEpochs(path);
  const who = candidate > 0 ? `L=${latent} candidate ${candidate}` : `L=${latent}`;
  const log = (line: string) => ctx.emit({ type: "log", line: `${who}: ${line}` });
  const split = vaeTrainSplit(ctx.cfg, ctx.train);
  if (done >= cfg.epochs) log(`loading cached VAE ${path}`);
  else {log(
      `training VAE on ${split.count} unlabelled images, ${cfg.epochs} epochs${
        done > 0 ? ` (resuming after epoch ${done})` : ""
      }`,
    );}
  const t0 = performance.now();
  const r = await trainVae(cfg, split, {
    checkpointPath: path,
    resumeFrom: done > 0 ? path : undefined,
    progress: false,
    log,
    engine: ctx.trainEngine,
  });
  const seconds = done >= cfg.epochs ? 0 : (performance.now() - t0) / 1000;
  const trained = r.history.filter((h) => h.epoch > done);
  const ips = trained.length
    ? trained.reduce((a, h) => a + h.imagesPerSecond, 0) / trained.length
    : null;
  return { models: r.models, path, seconds, cached: done >= cfg.epochs, imagesPerSecond: ips };
}

export async function runLatentJob(ctx: JobContext, job: LatentJob): Promise<void> {
  const { cfg, train, test } = ctx;
  const L = job.latent;
  const vae = await obtainVae(ctx, L, job.candidate ?? 0);
  const { encoder, decoder } = vae.models;
  try {
    const elbo = evaluateVae(vae.models, L, test);
    ctx.emit({
      type: "vae",
      vae: {
        latent: L,
        trainSeconds: vae.seconds,
        cached: vae.cached,
        checkpoint: relative(process.cwd(), vae.path),
        epochs: cfg.vae.epochs,
        imagesPerSecond: vae.imagesPerSecond,
        testElbo: elbo.elbo,
        testRec: elbo.rec,
        testKl: elbo.kl,
        ...(job.candidate === undefined ? {} : { candidate: job.candidate }),
      },
    });
    const muTest = encodeMu(encoder, L, test);
    // Large cell sets encode the whole training set once and gather rows; small ones only their rows.
    const wanted = job.cells.reduce((a, c) => a + c.samples, 0);
    const few = job.cells.filter((c) => isFewLabel(c.classifier));
    const muAll = wanted > train.count / 3 || few.length ? encodeMu(encoder, L, train) : null;
    for (const c of job.cells.filter((c) => !isFewLabel(c.classifier))) {
      const t0 = performance.now();
      const idx = labelledIndices(cfg, train.labels, c.samples, cfg.dataSeed + c.seed);
      const sub = take(train, idx);
      const mu = muAll ? gather(muAll, L, idx) : encodeMu(encoder, L, sub);
      const { head, fit } = headCfg(cfg, c);
      const model = trainHead(head, L, mu, sub.labels, sub.count, fit);
      const trainAcc = accuracy(predict(model, mu, sub.count, [L]), sub.labels);
      const testAcc = accuracy(predict(model, muTest, test.count, [L]), test.labels);
      model.dispose();
      const steps = headSteps(sub.count, fit);
      emitCell(ctx, c, trainAcc, testAcc, sub.count, steps, t0);
    }
    if (few.length) {
      runFewLabelCells({
        cfg,
        train,
        test,
        latent: L,
        muAll: muAll!,
        muTest,
        cacheStem: vae.path.replace(/\.bin$/, ""),
        log: (line) => ctx.emit({ type: "log", line: `L=${L}: ${line}` }),
        emit: (c, r, t0) => emitCell(ctx, c, r.trainAcc, r.testAcc, c.samples, r.steps, t0, r.note),
      }, few);
    }
    if (job.scatter) {
      const sub = stratifiedSubset(train, Math.min(cfg.scatterCount, train.count), cfg.dataSeed);
      const mu = encodeMu(encoder, L, sub);
      const x: number[] = [], y: number[] = [];
      for (let i = 0; i < sub.count; i++) {
        // 4 decimals are plenty for a plot and keep results.json small.
        x.push(Math.round(mu[i * L] * 1e4) / 1e4);
        y.push(Math.round(mu[i * L + (L > 1 ? 1 : 0)] * 1e4) / 1e4);
      }
      ctx.emit({ type: "scatter", scatter: { latent: L, x, y, label: Array.from(sub.labels) } });
    }
    if (job.recon) {
      const first = ctx.testFull.images.subarray(0, 10 * PIXELS);
      const rec = reconstruct(encoder, decoder, L, first, 10);
      ctx.emit({
        type: "recon",
        latent: L,
        pixels: encodeBase64(toBytes(rec)),
        testImages: encodeBase64(first),
      });
    }
  } finally {
    encoder.dispose();
    decoder.dispose();
  }
}

export async function runCnnJob(ctx: JobContext, job: CnnJob): Promise<void> {
  const { cfg, train, test } = ctx;
  const c = job.cell;
  const t0 = performance.now();
  const sub = take(train, labelledIndices(cfg, train.labels, c.samples, cfg.dataSeed + c.seed));
  const arch = { ...cfg.cnn.arch, seed: cfg.cnn.arch.seed + c.seed };
  // A line at most every 30 s: long cells show they are alive, short ones stay quiet.
  let lastLog = t0;
  const progress = (step: number, steps: number) => {
    if (performance.now() - lastLog < 30_000) return;
    lastLog = performance.now();
    ctx.emit({
      type: "log",
      line: `${job.id}: step ${step}/${steps}, ${((lastLog - t0) / 1000).toFixed(0)} s`,
    });
  };
  const { model, steps } = await trainPixelCnn(
    arch,
    sub,
    { ...cfg.cnn.fit, seed: cfg.cnn.fit.seed + c.seed },
    ctx.trainEngine,
    progress,
  );
  const nTrain = Math.min(sub.count, cfg.trainAccMax);
  const trainAcc = accuracy(
    predict(model, normalizePixels(sub.images.subarray(0, nTrain * PIXELS)), nTrain, CNN_INPUT),
    sub.labels.subarray(0, nTrain),
  );
  const testAcc = accuracy(
    predict(model, normalizePixels(test.images), test.count, CNN_INPUT),
    test.labels,
  );
  model.dispose();
  emitCell(ctx, c, trainAcc, testAcc, nTrain, steps, t0);
}

/** Reports a scored cell: its spec, accuracies, how many images scored it, steps and time. */
function emitCell(
  ctx: JobContext,
  c: CellSpec,
  trainAcc: number,
  testAcc: number,
  trainEvalCount: number,
  steps: number,
  t0: number,
  note?: string,
): void {
  const seconds = (performance.now() - t0) / 1000;
  const testCount = ctx.test.count;
  ctx.emit({
    type: "cell",
    cell: {
      ...c,
      trainAcc,
      testAcc,
      trainEvalCount,
      testCount,
      steps,
      seconds,
      ...(note ? { note } : {}),
    },
  });
}

/** Tensors alive now: a worker checks it between jobs to catch leaks early. */
export function liveTensors(): number {
  return tf.memory().numTensors;
}
