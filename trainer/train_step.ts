/**
 * One training step of the VAE loop, behind one interface for both engines: the tfjs optimizer
 * (optimizer.minimize on the current tfjs backend) or an onnxruntime graph per step
 * (engine/ort_lanes.ts OrtEngine). Both take the same batch (fillBatch) and draw the same noise
 * (model.ts latentNoise under stepSeed), so their results agree up to float error; the loop in
 * train.ts never asks which engine it runs.
 */
import * as tf from "@tensorflow/tfjs";
import { PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { tfjsOptimizerGroups } from "./checkpoint.ts";
import type { Split } from "./data.ts";
import {
  classLoss,
  encodeParts,
  headLogits,
  latentNoise,
  reparameterize,
  splitMoments,
  vaeLoss,
} from "./model.ts";
import type { OrtEngine } from "./engine/ort_lanes.ts";
import { type EngineChoice, startOrtEngine } from "./engine/choice.ts";
import type { TrainConfig, VaeModels } from "./train.ts";

type Groups = Record<string, { name: string; tensor: tf.Tensor }[]>;

/** A training engine as the loop sees it. */
export interface StepEngine {
  /** One step on the batch in x (pixels) and y (labels) with noise seed `seed`. */
  step(x: Float32Array, y: Float32Array, seed: number): Promise<StepParts>;
  setLearningRate(lr: number): void;
  /** Writes the engine's weights back to the tfjs models (nothing to do for tfjs). */
  sync(): void;
  /** The optimizer's state as checkpoint groups; `release` frees what was made for it. */
  optimizerState(started: boolean): Promise<{ groups: Groups; release: () => void }>;
  dispose(): Promise<void>;
}

/** A step's batch means (total, rec, kl, ce) and the head's correct predictions (hits). */
export type StepParts = [total: number, rec: number, kl: number, ce: number, hits: number];

/**
 * Per-step noise seed: distinct for every (seed, step), stable across runs and resumes. Never 0,
 * which tfjs reads as "unseeded".
 */
export function stepSeed(seed: number, step: number): number {
  return ((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0) || 1;
}

/** Fills `out` with normalised pixels of the given rows; the one batch assembly path. */
export function fillBatch(
  split: Split,
  rows: ArrayLike<number>,
  start: number,
  n: number,
  out: Float32Array,
  labels: Float32Array,
): void {
  for (let i = 0; i < n; i++) {
    const r = rows[start + i];
    normalizePixels(
      split.images.subarray(r * PIXELS, (r + 1) * PIXELS),
      out.subarray(i * PIXELS, (i + 1) * PIXELS),
    );
    labels[i] = split.labels[r];
  }
}

function variablesOf(m: VaeModels): tf.Variable[] {
  return [m.encoder, m.decoder, ...(m.head ? [m.head] : [])].flatMap((s) =>
    s.trainableWeights.map((w) => w.read() as tf.Variable)
  );
}

/**
 * The engine `choice` asks for, started from the models' weights and the tfjs optimizer's
 * state (engine/choice.ts decides whether onnxruntime can run it).
 */
export async function startStepEngine(
  choice: EngineChoice | undefined,
  cfg: TrainConfig,
  models: VaeModels,
  optimizer: tf.Optimizer,
  o: { threads?: number; lanes?: number; log: (s: string) => void },
): Promise<StepEngine> {
  const ort = await startOrtEngine(choice, cfg, models, optimizer, o);
  const vars = variablesOf(models);
  return ort ? ortStepEngine(ort, models, vars) : tfjsStepEngine(cfg, models, optimizer, vars);
}

/** The tfjs loss of one step: the negative ELBO plus the head's weighted cross-entropy. */
function tfjsLoss(
  cfg: TrainConfig,
  models: VaeModels,
  x: Float32Array,
  y: Float32Array,
  seed: number,
) {
  const xt = tf.tensor4d(x, [cfg.batchSize, 28, 28, 1]);
  const enc = encodeParts(models.encoder, xt, true);
  const { mu, logvar } = splitMoments(enc.moments, cfg.vae.latent);
  const z = reparameterize(mu, logvar, seed);
  const logits = models.decoder.apply(z, { training: true }) as tf.Tensor;
  const l = vaeLoss(xt, logits, mu, logvar);
  let total = l.total;
  let ce = tf.scalar(0);
  let hits: tf.Scalar = tf.scalar(0);
  if (models.head && cfg.head) {
    const hl = headLogits(models.head, cfg.head.input, { hidden: enc.hidden, mu }, true);
    const yt = tf.tensor1d(y, "float32");
    ce = classLoss(hl, yt);
    total = tf.add(total, tf.mul(ce, cfg.classWeight)) as tf.Scalar;
    hits = tf.sum(tf.equal(tf.argMax(hl, 1), yt.toInt())).toFloat() as tf.Scalar;
  }
  return { total, parts: [total, l.rec, l.kl, ce, hits] };
}

function tfjsStepEngine(
  cfg: TrainConfig,
  models: VaeModels,
  optimizer: tf.Optimizer,
  vars: tf.Variable[],
): StepEngine {
  return {
    step(x, y, seed) {
      let parts: tf.Tensor1D | null = null;
      const cost = optimizer.minimize(
        () => {
          const l = tfjsLoss(cfg, models, x, y, seed);
          parts = tf.keep(tf.stack(l.parts) as tf.Tensor1D);
          return l.total;
        },
        false,
        vars,
      );
      cost?.dispose();
      const out = Array.from(parts!.dataSync()) as StepParts;
      (parts as tf.Tensor1D | null)?.dispose();
      return Promise.resolve(out);
    },
    setLearningRate(lr) {
      (optimizer as unknown as { learningRate: number }).learningRate = lr;
    },
    sync() {},
    async optimizerState(started) {
      const groups = await tfjsOptimizerGroups(optimizer, started);
      // getWeights() makes a fresh scalar for the iteration count; the moments are Adam's own.
      const release = () =>
        tf.dispose(groups.optimizer.filter((w) => w.name === "iter").map((w) => w.tensor));
      return { groups, release };
    },
    dispose: () => Promise.resolve(),
  };
}

function ortStepEngine(ort: OrtEngine, models: VaeModels, vars: tf.Variable[]): StepEngine {
  const { batchSize, latent } = ort.opts;
  return {
    async step(x, y, seed) {
      const eps = tf.tidy(() => latentNoise(batchSize, latent, seed).dataSync() as Float32Array);
      const r = await ort.step(x, eps, y);
      return [r.loss, r.rec, r.kl, r.ce, r.correct];
    },
    setLearningRate(lr) {
      ort.learningRate = lr;
    },
    sync() {
      ort.writeTo(models);
    },
    async optimizerState(started) {
      const { adamStateToCheckpoint } = await import("./engine/ort_train.ts");
      const groups = adamStateToCheckpoint(ort.getOptimizerState(), vars, started);
      const release = () =>
        tf.dispose([...groups.optimizer, ...groups.adam_beta_powers].map((w) => w.tensor));
      return { groups, release };
    },
    dispose: () => ort.dispose(),
  };
}
