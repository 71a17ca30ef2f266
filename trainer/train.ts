/**
 * The VAE training loop: Adam on the negative ELBO (summed Bernoulli cross-entropy + KL) with
 * the reparameterisation trick, optionally joined by a classifier head on mu whose weighted
 * cross-entropy is added (the served bundle's "joint" mode; the study's protocol uses weight 0
 * and trains heads later on the frozen encoder). Seeded: the shuffle of each epoch and the noise
 * of each step derive from the config's seed, so a resumed run continues bit-for-bit. Each step
 * runs on the engine of train_step.ts (tfjs or onnxruntime); this module is the loop around it:
 * epochs, progress, validation, checkpoints and resume.
 */
import * as tf from "@tensorflow/tfjs";
import { PIXELS } from "../common/labels.ts";
import {
  loadCheckpoint,
  restoreTrainingState,
  saveCheckpoint,
  weightGroups,
} from "./checkpoint.ts";
import { rng, shuffle, type Split } from "./data.ts";
import {
  buildDecoder,
  buildEncoder,
  buildHead,
  encodeParts,
  type HeadConfig,
  type HeadInput,
  headInputWidth,
  headLogits,
  reparameterize,
  splitMoments,
  type VaeConfig,
  vaeLoss,
} from "./model.ts";
import { ProgressBar } from "./progress.ts";
import type { EngineChoice } from "./engine/choice.ts";
import { fillBatch, startStepEngine, type StepEngine, stepSeed } from "./train_step.ts";
import { augmentBatch, type AugmentConfig } from "./augment.ts";
import type { Lineage } from "../bundle/lineage.ts";

export interface TrainConfig {
  vae: VaeConfig;
  /** Classifier head trained jointly on mu (or the hidden features: head.input), or null for a pure (unsupervised) VAE. */
  head: HeadConfig | null;
  /** Weight of the head's cross-entropy (per image) against the per-image negative ELBO. */
  classWeight: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  /**
   * Which training images (the CLI's --train-count/--val-count, image data's held-out shares),
   * so a resume selects the same.
   */
  data?: { trainCount: number; valCount: number; testFraction?: number; valFraction?: number };
  /** Training-time augmentation (augment.ts); none when absent. */
  augment?: AugmentConfig;
  /** Learning-rate schedule (learningRateAt); absent: the constant learningRate. */
  lrSchedule?: "cosine";
  /** A warm start's parent (--init-from as given) and lineage, so a resume continues it. */
  warmStart?: { from: string; lineage: Lineage };
}

export interface EpochRecord {
  epoch: number;
  seconds: number;
  imagesPerSecond: number;
  train: { loss: number; rec: number; kl: number; ce: number; acc: number };
  val: { elbo: number; rec: number; kl: number; acc: number } | null;
}

export interface VaeModels {
  encoder: tf.Sequential;
  decoder: tf.Sequential;
  head: tf.Sequential | null;
}

export interface TrainOptions {
  val?: Split | null;
  /** Where to write checkpoint.bin after every epoch (and on interrupt); none when omitted. */
  checkpointPath?: string;
  /** Resume from this checkpoint: its config wins, except `epochs` when the caller's is > 0. */
  resumeFrom?: string;
  /** Stop requested (e.g. Ctrl-C): the loop saves a checkpoint at the current step and returns. */
  shouldStop?: () => boolean;
  progress?: boolean;
  log?: (line: string) => void;
  /** Sets the fresh models' weights before the first step (a warm start); not on resume. */
  init?: (models: VaeModels) => void;
  /** Called after each epoch, e.g. to print a summary. */
  onEpoch?: (r: EpochRecord) => void;
  /**
   * Which engine runs the training steps ("auto": ort when it can build the graph, else tfjs):
   * "tfjs" (default: optimizer.minimize on the current tfjs
   * backend) or "ort" (engine/ort_train.ts: forward + backward + Adam as one onnxruntime graph;
   * same data order, noise and Adam, results equal up to float error). With "ort" the weights
   * are written back to the tfjs models at every epoch end and checkpoint, so evaluation, export
   * and checkpoints (interchangeable between engines) are unchanged.
   */
  engine?: EngineChoice;
  /** onnxruntime intra-op threads for engine "ort" (default 1). */
  ortThreads?: number;
  /** Data-parallel lanes for engine "ort" (engine/ort_lanes.ts: one core each; default 1). */
  ortLanes?: number;
}

export function buildVaeModels(cfg: TrainConfig): VaeModels {
  return {
    encoder: buildEncoder(cfg.vae),
    decoder: buildDecoder(cfg.vae),
    head: cfg.head ? buildHead(headInputWidth(cfg.vae, cfg.head), cfg.head) : null,
  };
}

function modelGroups(m: VaeModels): Record<string, tf.Sequential> {
  const g: Record<string, tf.Sequential> = { encoder: m.encoder, decoder: m.decoder };
  if (m.head) g.head = m.head;
  return g;
}

/** Negative ELBO (one noise sample per image) and head accuracy over a split, in batches. */
export function evaluateVae(
  m: VaeModels,
  latent: number,
  split: Split,
  o: { headInput?: HeadInput; seed?: number; batch?: number } = {},
): { elbo: number; rec: number; kl: number; acc: number } {
  const { seed = 12345, batch = 500 } = o;
  let rec = 0, kl = 0, correct = 0;
  const x = new Float32Array(batch * PIXELS);
  const y = new Float32Array(batch);
  const rows = Array.from({ length: split.count }, (_, i) => i);
  for (let s = 0; s < split.count; s += batch) {
    const n = Math.min(batch, split.count - s);
    fillBatch(split, rows, s, n, x, y);
    const [r, k, c] = tf.tidy(() => {
      const xt = tf.tensor4d(x.subarray(0, n * PIXELS), [n, 28, 28, 1]);
      const enc = encodeParts(m.encoder, xt);
      const { mu, logvar } = splitMoments(enc.moments, latent);
      const z = reparameterize(mu, logvar, stepSeed(seed, s));
      const parts = vaeLoss(xt, m.decoder.apply(z) as tf.Tensor, mu, logvar);
      let hits = tf.scalar(0);
      if (m.head) {
        const pred = tf.argMax(headLogits(m.head, o.headInput, { hidden: enc.hidden, mu }), 1);
        hits = tf.sum(tf.equal(pred, tf.tensor1d(y.subarray(0, n), "int32")));
      }
      return [parts.rec.dataSync()[0], parts.kl.dataSync()[0], hits.dataSync()[0]];
    });
    rec += r * n;
    kl += k * n;
    correct += c;
  }
  return {
    elbo: (rec + kl) / split.count,
    rec: rec / split.count,
    kl: kl / split.count,
    acc: m.head ? correct / split.count : NaN,
  };
}

/**
 * The learning rate of step `globalStep`: the configured one, or with schedule "cosine" that
 * rate decayed along half a cosine to 0 at the run's last step (a short fine-tune ends settled).
 */
export function learningRateAt(cfg: TrainConfig, globalStep: number, stepsPerEpoch: number) {
  if (cfg.lrSchedule !== "cosine") return cfg.learningRate;
  const total = Math.max(1, cfg.epochs * stepsPerEpoch);
  return cfg.learningRate * 0.5 * (1 + Math.cos(Math.PI * Math.min(globalStep, total) / total));
}

/** A run's position and state, shared by its steps, epochs and checkpoints. */
interface Run {
  cfg: TrainConfig;
  models: VaeModels;
  groups: Record<string, tf.Sequential>;
  engine: StepEngine;
  history: EpochRecord[];
  globalStep: number;
  opts: TrainOptions;
  log: (line: string) => void;
}

/** Where a run starts: at the beginning with the caller's config, or at its checkpoint. */
function startOf(cfgIn: TrainConfig, opts: TrainOptions, log: (s: string) => void) {
  if (!opts.resumeFrom) {
    return { cfg: cfgIn, epoch: 0, step: 0, globalStep: 0, history: [] as EpochRecord[], ck: null };
  }
  const ck = loadCheckpoint<TrainConfig>(opts.resumeFrom);
  const h = ck.header;
  log(
    `resuming from ${opts.resumeFrom}: epoch ${
      h.epoch + 1
    }, step ${h.stepInEpoch}, global step ${h.globalStep}`,
  );
  return {
    cfg: { ...h.config, epochs: cfgIn.epochs > 0 ? cfgIn.epochs : h.config.epochs },
    epoch: h.epoch,
    step: h.stepInEpoch,
    globalStep: h.globalStep,
    history: h.history as EpochRecord[],
    ck,
  };
}

/** Writes the run's checkpoint at (epoch, stepInEpoch), when the run has a checkpoint path. */
async function save(run: Run, epoch: number, stepInEpoch: number): Promise<void> {
  if (!run.opts.checkpointPath) return;
  const state = await run.engine.optimizerState(run.globalStep > 0);
  saveCheckpoint(run.opts.checkpointPath, {
    config: run.cfg,
    epoch,
    stepInEpoch,
    globalStep: run.globalStep,
    history: run.history,
    groups: { ...weightGroups(run.groups), ...state.groups },
  });
  state.release();
}

interface Sums {
  loss: number;
  rec: number;
  kl: number;
  ce: number;
  correct: number;
  n: number;
}

/** Sets the step's learning rate on whichever engine runs it (only a schedule changes it). */
function applyLearningRate(run: Run, stepsPerEpoch: number): void {
  if (!run.cfg.lrSchedule) return;
  run.engine.setLearningRate(learningRateAt(run.cfg, run.globalStep, stepsPerEpoch));
}

/** The steps of one epoch from `firstStep`; null when a stop was asked (checkpoint saved). */
async function runEpoch(
  run: Run,
  train: Split,
  epoch: number,
  firstStep: number,
  bar: ProgressBar | null,
): Promise<{ sums: Sums; seconds: number } | null> {
  const { cfg, opts } = run;
  const B = cfg.batchSize, stepsPerEpoch = Math.floor(train.count / B);
  const x = new Float32Array(B * PIXELS), y = new Float32Array(B);
  const rows = Int32Array.from({ length: train.count }, (_, i) => i);
  shuffle(rows, rng(cfg.seed * 7919 + epoch));
  const t0 = performance.now();
  const sums: Sums = { loss: 0, rec: 0, kl: 0, ce: 0, correct: 0, n: 0 };
  for (let step = firstStep; step < stepsPerEpoch; step++) {
    if (opts.shouldStop?.()) {
      run.engine.sync();
      await save(run, epoch, step);
      const where = opts.checkpointPath ? `; checkpoint saved to ${opts.checkpointPath}` : "";
      run.log(`\nstopped at epoch ${epoch + 1} step ${step}${where}`);
      return null;
    }
    fillBatch(train, rows, step * B, B, x, y);
    const seed = stepSeed(cfg.seed, run.globalStep);
    // Its own stream, so turning augmentation on leaves the noise of every step as it was.
    if (cfg.augment) augmentBatch(x, B, cfg.augment, rng(seed ^ 0x5bd1e995));
    applyLearningRate(run, stepsPerEpoch);
    const [loss, rec, kl, ce, hits] = await run.engine.step(x, y, seed);
    if (!Number.isFinite(loss)) {
      throw new Error(
        `Training diverged: loss is ${loss} at epoch ${epoch + 1} step ${step}; lower --lr`,
      );
    }
    sums.loss += loss, sums.rec += rec, sums.kl += kl, sums.ce += ce, sums.correct += hits;
    sums.n++;
    run.globalStep++;
    const elapsed = (performance.now() - t0) / 1000;
    bar?.update({
      label: `epoch ${epoch + 1}/${cfg.epochs}`,
      done: step + 1,
      total: stepsPerEpoch,
      fields: {
        loss: (sums.loss / sums.n).toFixed(1),
        rec: (sums.rec / sums.n).toFixed(1),
        kl: (sums.kl / sums.n).toFixed(2),
        ...(run.models.head
          ? { ce: (sums.ce / sums.n).toFixed(3), acc: (sums.correct / (sums.n * B)).toFixed(3) }
          : {}),
      },
      rate: (sums.n * B) / Math.max(elapsed, 1e-9),
      unit: "img",
    });
    // Yield to the event loop (a macrotask, not a microtask) so a SIGINT handler can run.
    await new Promise<void>((r) => setImmediate(r));
  }
  return { sums, seconds: (performance.now() - t0) / 1000 };
}

/** The epoch's record: validation, history, summary line, checkpoint. */
async function finishEpoch(
  run: Run,
  epoch: number,
  done: { sums: Sums; seconds: number },
  bar: ProgressBar | null,
): Promise<void> {
  const { cfg, models, opts } = run;
  const { sums, seconds } = done;
  const B = cfg.batchSize;
  run.engine.sync();
  const val = opts.val
    ? evaluateVae(models, cfg.vae.latent, opts.val, { headInput: cfg.head?.input })
    : null;
  const rec: EpochRecord = {
    epoch: epoch + 1,
    seconds,
    imagesPerSecond: (sums.n * B) / seconds,
    train: {
      loss: sums.loss / sums.n,
      rec: sums.rec / sums.n,
      kl: sums.kl / sums.n,
      ce: sums.ce / sums.n,
      acc: sums.correct / (sums.n * B),
    },
    val: val ? { elbo: val.elbo, rec: val.rec, kl: val.kl, acc: val.acc } : null,
  };
  run.history.push(rec);
  const valTxt = val
    ? `  val -ELBO ${val.elbo.toFixed(2)} (rec ${val.rec.toFixed(2)} kl ${val.kl.toFixed(2)})${
      models.head ? ` acc ${(val.acc * 100).toFixed(2)}%` : ""
    }`
    : "";
  const summary = `epoch ${epoch + 1}/${cfg.epochs}  ${seconds.toFixed(1)} s  ${
    rec.imagesPerSecond.toFixed(0)
  } img/s  train loss ${rec.train.loss.toFixed(2)}${valTxt}`;
  if (bar) bar.finish(summary);
  else run.log(summary);
  opts.onEpoch?.(rec);
  await save(run, epoch + 1, 0);
}

/**
 * Trains the VAE (and the joint head, if configured) on `train`. Returns the models and the
 * per-epoch history. With `resumeFrom`, rebuilds the models and the optimizer state from the
 * checkpoint and continues at its step; otherwise `init` may set the fresh models' weights.
 */
export async function trainVae(
  cfgIn: TrainConfig,
  train: Split,
  opts: TrainOptions = {},
): Promise<{ models: VaeModels; history: EpochRecord[]; stopped: boolean; config: TrainConfig }> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + "\n"));
  const start = startOf(cfgIn, opts, log);
  const cfg = start.cfg;
  const models = buildVaeModels(cfg);
  const groups = modelGroups(models);
  const optimizer = tf.train.adam(cfg.learningRate);
  if (start.ck) await restoreTrainingState(start.ck, groups, optimizer);
  else opts.init?.(models);
  // Before the engine starts, so a refused run leaves no onnxruntime lanes behind.
  if (Math.floor(train.count / cfg.batchSize) < 1) {
    throw new Error(
      `Cannot train: ${train.count} images is fewer than one batch of ${cfg.batchSize}`,
    );
  }
  const engine = await startStepEngine(opts.engine, cfg, models, optimizer, {
    threads: opts.ortThreads,
    lanes: opts.ortLanes,
    log,
  });
  const run: Run = {
    cfg,
    models,
    groups,
    engine,
    history: start.history,
    globalStep: start.globalStep,
    opts,
    log,
  };
  const bar = opts.progress === false ? null : new ProgressBar();
  let stopped = false;
  for (let epoch = start.epoch; epoch < cfg.epochs && !stopped; epoch++) {
    const done = await runEpoch(run, train, epoch, epoch === start.epoch ? start.step : 0, bar);
    if (done) await finishEpoch(run, epoch, done, bar);
    else stopped = true;
  }
  engine.sync();
  await engine.dispose();
  optimizer.dispose();
  return { models, history: run.history, stopped, config: cfg };
}
