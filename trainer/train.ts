/**
 * The VAE training loop: Adam on the negative ELBO (summed Bernoulli cross-entropy + KL) with
 * the reparameterisation trick, optionally joined by a classifier head on mu whose weighted
 * cross-entropy is added (the served bundle's "joint" mode; the study's protocol uses weight 0
 * and trains heads later on the frozen encoder). Seeded: the shuffle of each epoch and the noise
 * of each step derive from the config's seed, so a resumed run continues bit-for-bit.
 */
import * as tf from "@tensorflow/tfjs";
import { PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { rng, shuffle, type Split } from "./data.ts";
import {
  buildDecoder,
  buildEncoder,
  buildHead,
  classLoss,
  type HeadConfig,
  sampleLatent,
  splitMoments,
  type VaeConfig,
  vaeLoss,
} from "./model.ts";
import { ProgressBar } from "./progress.ts";
import type { OrtEngine } from "./engine/ort_lanes.ts";
import type { EngineChoice } from "./engine/choice.ts";
import { augmentBatch, type AugmentConfig } from "./augment.ts";

export interface TrainConfig {
  vae: VaeConfig;
  /** Classifier head trained jointly on mu, or null for a pure (unsupervised) VAE. */
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
  /** With resumeFrom: only rebuild the checkpoint's models, train no step (export, figures). */
  restoreOnly?: boolean;
  /** Stop requested (e.g. Ctrl-C): the loop saves a checkpoint at the current step and returns. */
  shouldStop?: () => boolean;
  progress?: boolean;
  log?: (line: string) => void;
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
    head: cfg.head ? buildHead(cfg.vae.latent, cfg.head) : null,
  };
}

function modelGroups(m: VaeModels): Record<string, tf.Sequential> {
  const g: Record<string, tf.Sequential> = { encoder: m.encoder, decoder: m.decoder };
  if (m.head) g.head = m.head;
  return g;
}

/** Per-step noise seed: distinct for every (seed, step), stable across runs and resumes. */
function stepSeed(seed: number, step: number): number {
  return (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca6b)) >>> 0;
}

/** Fills `out` with normalised pixels of the given rows; the one batch assembly path. */
function fillBatch(
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

/** Negative ELBO (one noise sample per image) and head accuracy over a split, in batches. */
export function evaluateVae(
  m: VaeModels,
  latent: number,
  split: Split,
  seed = 12345,
  batch = 500,
): { elbo: number; rec: number; kl: number; acc: number } {
  let rec = 0, kl = 0, correct = 0;
  const x = new Float32Array(batch * PIXELS);
  const y = new Float32Array(batch);
  const rows = Array.from({ length: split.count }, (_, i) => i);
  for (let s = 0; s < split.count; s += batch) {
    const n = Math.min(batch, split.count - s);
    fillBatch(split, rows, s, n, x, y);
    const [r, k, c] = tf.tidy(() => {
      const xt = tf.tensor4d(x.subarray(0, n * PIXELS), [n, 28, 28, 1]);
      const { mu, logvar } = splitMoments(m.encoder.apply(xt) as tf.Tensor2D, latent);
      const eps = tf.randomNormal(mu.shape, 0, 1, "float32", stepSeed(seed, s));
      const z = sampleLatent(mu, logvar, eps);
      const parts = vaeLoss(xt, m.decoder.apply(z) as tf.Tensor, mu, logvar);
      let hits = tf.scalar(0);
      if (m.head) {
        const pred = tf.argMax(m.head.apply(mu) as tf.Tensor2D, 1);
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

/** Adam's running beta powers: not part of getWeights(), needed for an exact resume. */
interface AdamInternals {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
}

function variablesOf(m: VaeModels): tf.Variable[] {
  return Object.values(modelGroups(m)).flatMap((s) =>
    s.trainableWeights.map((w) => w.read() as tf.Variable)
  );
}

/**
 * Trains the VAE (and the joint head, if configured) on `train`. Returns the models and the
 * per-epoch history. With `resumeFrom`, rebuilds the models and the optimizer state from the
 * checkpoint and continues at its step.
 */
export async function trainVae(
  cfgIn: TrainConfig,
  train: Split,
  opts: TrainOptions = {},
): Promise<{ models: VaeModels; history: EpochRecord[]; stopped: boolean; config: TrainConfig }> {
  const log = opts.log ?? ((l: string) => process.stderr.write(l + "\n"));
  let cfg = cfgIn;
  let startEpoch = 0, startStep = 0, globalStep = 0;
  let history: EpochRecord[] = [];
  let restored: Float32Array[] | null = null;
  let restoredNames: { group: string; name: string; shape: number[] }[] = [];
  if (opts.resumeFrom) {
    const ck = loadCheckpoint<TrainConfig>(opts.resumeFrom);
    cfg = {
      ...ck.header.config,
      epochs: cfgIn.epochs > 0 ? cfgIn.epochs : ck.header.config.epochs,
    };
    startEpoch = ck.header.epoch;
    startStep = ck.header.stepInEpoch;
    globalStep = ck.header.globalStep;
    history = ck.header.history as EpochRecord[];
    restored = ck.values;
    restoredNames = ck.header.tensors;
    if (!opts.restoreOnly) {
      log(
        `resuming from ${opts.resumeFrom}: epoch ${
          startEpoch + 1
        }, step ${startStep}, global step ${globalStep}`,
      );
    }
  }
  const models = buildVaeModels(cfg);
  const groups = modelGroups(models);
  const vars = variablesOf(models);
  const optimizer = tf.train.adam(cfg.learningRate);

  if (restored) {
    let i = 0;
    const optimizerWeights: { name: string; tensor: tf.Tensor }[] = [];
    const betaPowers: Float32Array[] = [];
    for (const t of restoredNames) {
      const v = restored[i++];
      if (t.group === "optimizer") {
        optimizerWeights.push({ name: t.name, tensor: tf.tensor(v, t.shape) });
      }
      if (t.group === "adam_beta_powers") betaPowers.push(v);
    }
    for (const [g, model] of Object.entries(groups)) {
      const own = restoredNames.map((t, k) => ({ t, v: restored![k] })).filter((e) =>
        e.t.group === g
      );
      if (own.length !== model.weights.length) {
        throw new Error(
          `Cannot resume: checkpoint has ${own.length} ${g} weights, the model has ${model.weights.length}`,
        );
      }
      const ts = own.map((e) => tf.tensor(e.v, e.t.shape));
      model.setWeights(ts);
      ts.forEach((t) => t.dispose());
    }
    // Adam's slots are created lazily on the first step; set them after one is known to exist.
    if (optimizerWeights.length > 0) await optimizer.setWeights(optimizerWeights);
    optimizerWeights.forEach((w) => w.tensor.dispose());
    // setWeights recomputes beta^t with pow(), which differs in the last bit from the running
    // product Adam keeps; restore the saved products so a resumed run is bit-identical.
    if (betaPowers.length === 2) {
      const a = optimizer as unknown as AdamInternals;
      tf.tidy(() => {
        a.accBeta1.assign(tf.scalar(betaPowers[0][0]));
        a.accBeta2.assign(tf.scalar(betaPowers[1][0]));
      });
    }
  }
  if (opts.restoreOnly) {
    optimizer.dispose();
    return { models, history, stopped: false, config: cfg };
  }

  let ort: OrtEngine | null = null;
  if (opts.engine === "ort" || opts.engine === "auto") {
    try {
      const { OrtTrainer, adamStateFromTfjs } = await import("./engine/ort_train.ts");
      const ortOpts = {
        latent: cfg.vae.latent,
        batchSize: cfg.batchSize,
        learningRate: cfg.learningRate,
        classWeight: cfg.classWeight,
        threads: opts.ortThreads,
      };
      const lanes = opts.ortLanes ?? 1;
      ort = lanes > 1
        ? await (await import("./engine/ort_lanes.ts")).OrtLanes.create(
          models,
          { vae: cfg.vae, head: cfg.head },
          ortOpts,
          lanes,
        )
        : await OrtTrainer.create(models, ortOpts);
      const state = await adamStateFromTfjs(optimizer);
      if (state) ort.setOptimizerState(state);
    } catch (e) {
      // "auto" falls back to tfjs steps (e.g. no onnxruntime-node, or a layer the graph lacks).
      if (opts.engine === "ort") throw e;
      log(
        `engine auto: onnxruntime training unavailable (${
          (e as Error).message.split("\n")[0]
        }); training with tfjs`,
      );
    }
  }

  const save = async (epoch: number, stepInEpoch: number) => {
    if (!opts.checkpointPath) return;
    const groupsOut: Record<string, { name: string; tensor: tf.Tensor }[]> = {};
    for (const [g, model] of Object.entries(groups)) {
      groupsOut[g] = model.weights.map((w) => ({ name: w.originalName, tensor: w.read() }));
    }
    if (ort) {
      const { adamStateToCheckpoint } = await import("./engine/ort_train.ts");
      Object.assign(
        groupsOut,
        adamStateToCheckpoint(ort.getOptimizerState(), vars, globalStep > 0),
      );
    } else {
      const ow = globalStep > 0 ? await optimizer.getWeights() : [];
      groupsOut.optimizer = ow.map((w) => ({ name: w.name, tensor: w.tensor }));
      const a = optimizer as unknown as AdamInternals;
      groupsOut.adam_beta_powers = [{ name: "accBeta1", tensor: a.accBeta1 }, {
        name: "accBeta2",
        tensor: a.accBeta2,
      }];
    }
    saveCheckpoint(opts.checkpointPath, {
      config: cfg,
      epoch,
      stepInEpoch,
      globalStep,
      history,
      groups: groupsOut,
    });
    if (ort) {
      tf.dispose([...groupsOut.optimizer, ...groupsOut.adam_beta_powers].map((w) => w.tensor));
    } // getWeights() makes a fresh scalar for the iteration count; the moments are Adam's own.
    else tf.dispose(groupsOut.optimizer.filter((w) => w.name === "iter").map((w) => w.tensor));
  };
  // With engine "ort" the trained weights live in the trainer until written back.
  const sync = () => ort?.writeTo(models);

  const B = cfg.batchSize;
  const stepsPerEpoch = Math.floor(train.count / B);
  if (stepsPerEpoch < 1) {
    throw new Error(`Cannot train: ${train.count} images is fewer than one batch of ${B}`);
  }
  const x = new Float32Array(B * PIXELS);
  const y = new Float32Array(B);
  /** One tfjs step: returns [total, rec, kl, ce, hits]. */
  const tfjsStep = (seed: number): number[] => {
    let parts: tf.Tensor1D | null = null;
    const cost = optimizer.minimize(
      () => {
        const xt = tf.tensor4d(x, [B, 28, 28, 1]);
        const { mu, logvar } = splitMoments(
          models.encoder.apply(xt, { training: true }) as tf.Tensor2D,
          cfg.vae.latent,
        );
        const eps = tf.randomNormal(mu.shape, 0, 1, "float32", seed);
        const z = sampleLatent(mu, logvar, eps);
        const logits = models.decoder.apply(z, { training: true }) as tf.Tensor;
        const l = vaeLoss(xt, logits, mu, logvar);
        let total = l.total;
        let ce = tf.scalar(0);
        let hits: tf.Scalar = tf.scalar(0);
        if (models.head) {
          const hl = models.head.apply(mu, { training: true }) as tf.Tensor2D;
          const yt = tf.tensor1d(y, "float32");
          ce = classLoss(hl, yt);
          total = tf.add(total, tf.mul(ce, cfg.classWeight)) as tf.Scalar;
          hits = tf.sum(tf.equal(tf.argMax(hl, 1), yt.toInt())).toFloat() as tf.Scalar;
        }
        parts = tf.keep(tf.stack([total, l.rec, l.kl, ce, hits]) as tf.Tensor1D);
        return total;
      },
      false,
      vars,
    );
    cost?.dispose();
    const out = Array.from(parts!.dataSync());
    (parts as tf.Tensor1D | null)?.dispose();
    return out;
  };

  const bar = opts.progress === false ? null : new ProgressBar();
  let stopped = false;

  for (let epoch = startEpoch; epoch < cfg.epochs && !stopped; epoch++) {
    const rows = Int32Array.from({ length: train.count }, (_, i) => i);
    shuffle(rows, rng(cfg.seed * 7919 + epoch));
    const t0 = performance.now();
    const sums = { loss: 0, rec: 0, kl: 0, ce: 0, correct: 0, n: 0 };
    for (let step = epoch === startEpoch ? startStep : 0; step < stepsPerEpoch; step++) {
      if (opts.shouldStop?.()) {
        sync();
        await save(epoch, step);
        log(
          `\nstopped at epoch ${epoch + 1} step ${step}${
            opts.checkpointPath ? `; checkpoint saved to ${opts.checkpointPath}` : ""
          }`,
        );
        stopped = true;
        break;
      }
      fillBatch(train, rows, step * B, B, x, y);
      const seed = stepSeed(cfg.seed, globalStep);
      // Its own stream, so turning augmentation on leaves the noise of every step as it was.
      if (cfg.augment) augmentBatch(x, B, cfg.augment, rng(seed ^ 0x5bd1e995));
      const [loss, rec, kl, ce, hits] = ort ? await ortStep(ort, x, y, seed) : tfjsStep(seed);
      if (!Number.isFinite(loss)) {
        throw new Error(
          `Training diverged: loss is ${loss} at epoch ${epoch + 1} step ${step}; lower --lr`,
        );
      }
      sums.loss += loss,
        sums.rec += rec,
        sums.kl += kl,
        sums.ce += ce,
        sums.correct += hits,
        sums.n++;
      globalStep++;
      const elapsed = (performance.now() - t0) / 1000;
      bar?.update({
        label: `epoch ${epoch + 1}/${cfg.epochs}`,
        done: step + 1,
        total: stepsPerEpoch,
        fields: {
          loss: (sums.loss / sums.n).toFixed(1),
          rec: (sums.rec / sums.n).toFixed(1),
          kl: (sums.kl / sums.n).toFixed(2),
          ...(models.head
            ? { ce: (sums.ce / sums.n).toFixed(3), acc: (sums.correct / (sums.n * B)).toFixed(3) }
            : {}),
        },
        rate: (sums.n * B) / Math.max(elapsed, 1e-9),
        unit: "img",
      });
      // Yield to the event loop (a macrotask, not a microtask) so a SIGINT handler can run.
      await new Promise<void>((r) => setImmediate(r));
    }
    if (stopped) break;
    const seconds = (performance.now() - t0) / 1000;
    sync();
    const val = opts.val ? evaluateVae(models, cfg.vae.latent, opts.val) : null;
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
    history.push(rec);
    const valTxt = val
      ? `  val -ELBO ${val.elbo.toFixed(2)} (rec ${val.rec.toFixed(2)} kl ${val.kl.toFixed(2)})${
        models.head ? ` acc ${(val.acc * 100).toFixed(2)}%` : ""
      }`
      : "";
    const summary = `epoch ${epoch + 1}/${cfg.epochs}  ${seconds.toFixed(1)} s  ${
      rec.imagesPerSecond.toFixed(0)
    } img/s  train loss ${rec.train.loss.toFixed(2)}${valTxt}`;
    if (bar) bar.finish(summary);
    else log(summary);
    opts.onEpoch?.(rec);
    await save(epoch + 1, 0);
  }
  sync();
  await ort?.dispose();
  optimizer.dispose();
  return { models, history, stopped, config: cfg };
}

/** One ort step with the tfjs loop's noise (same seeded tf.randomNormal): [total, rec, kl, ce, hits]. */
async function ortStep(
  t: OrtEngine,
  x: Float32Array,
  y: Float32Array,
  seed: number,
): Promise<number[]> {
  const latent = t.opts.latent;
  const eps = tf.tidy(() =>
    tf.randomNormal([t.opts.batchSize, latent], 0, 1, "float32", seed).dataSync() as Float32Array
  );
  const r = await t.step(x, eps, y);
  return [r.loss, r.rec, r.kl, r.ce, r.correct];
}
