/**
 * Classifier training for the study's protocol: the VAE is trained once without labels and
 * frozen; heads (logistic regression by SGD, the small MLP by Adam) are trained on its latent
 * mu from N labelled images (the CNN baseline on the raw pixels of the same N images has its
 * loop in ./cnn_fit.ts). Architectures come from ./model.ts; this module owns the heads' loop and
 * the scoring both share.
 */
import * as tf from "@tensorflow/tfjs";
import { IMAGE_SIZE, NUM_CLASSES, PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { type Labels, rng, shuffle, type Split } from "./data.ts";
import { buildHead, classLoss, type HeadConfig, splitMoments } from "./model.ts";

/** Latent means of a split through a frozen encoder: [n * L] row-major. */
export function encodeMu(
  encoder: tf.LayersModel,
  latent: number,
  split: Split,
  batch = 1000,
): Float32Array {
  const out = new Float32Array(split.count * latent);
  const x = new Float32Array(batch * PIXELS);
  for (let s = 0; s < split.count; s += batch) {
    const n = Math.min(batch, split.count - s);
    normalizePixels(split.images.subarray(s * PIXELS, (s + n) * PIXELS), x);
    const mu = tf.tidy(() =>
      splitMoments(
        encoder.predict(
          tf.tensor4d(x.subarray(0, n * PIXELS), [n, IMAGE_SIZE, IMAGE_SIZE, 1]),
        ) as tf.Tensor2D,
        latent,
      ).mu
    );
    out.set(mu.dataSync(), s * latent);
    mu.dispose();
  }
  return out;
}

export interface FitOptions {
  /** Passes over the data; the loop also runs at least `minSteps` steps so tiny sets converge. */
  epochs: number;
  minSteps: number;
  maxSteps: number;
  batchSize: number;
  learningRate: number;
  seed: number;
}

export const LOGISTIC_FIT: Readonly<FitOptions> = Object.freeze({
  epochs: 30,
  minSteps: 600,
  maxSteps: 12000,
  batchSize: 64,
  learningRate: 0.1,
  seed: 3,
});
export const MLP_FIT: Readonly<FitOptions> = Object.freeze({
  epochs: 30,
  minSteps: 600,
  maxSteps: 12000,
  batchSize: 64,
  learningRate: 1e-3,
  seed: 3,
});
/** Steps the heads' loop runs for N samples (also used by the experiments' time estimate). */
export function headSteps(n: number, o: FitOptions): number {
  const B = Math.min(o.batchSize, n);
  return Math.min(o.maxSteps, Math.max(o.minSteps, Math.max(1, Math.floor(n / B)) * o.epochs));
}

/**
 * The heads' mini-batch loop over rows of a latent matrix. `features` is row-major with `width`
 * values per row; `shape` is one row's tensor shape.
 */
function fit(
  model: tf.Sequential,
  features: Float32Array,
  labels: Labels,
  n: number,
  width: number,
  shape: number[],
  optimizer: tf.Optimizer,
  o: FitOptions,
): void {
  const B = Math.min(o.batchSize, n);
  const perEpoch = Math.max(1, Math.floor(n / B));
  const steps = headSteps(n, o);
  const rand = rng(o.seed);
  const rows = Int32Array.from({ length: n }, (_, i) => i);
  const x = new Float32Array(B * width);
  const y = new Int32Array(B);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  for (let step = 0; step < steps; step++) {
    const k = step % perEpoch;
    if (k === 0) shuffle(rows, rand);
    for (let i = 0; i < B; i++) {
      const r = rows[k * B + i];
      x.set(features.subarray(r * width, (r + 1) * width), i * width);
      y[i] = labels[r];
    }
    optimizer.minimize(
      () => {
        const logits = model.apply(tf.tensor(x, [B, ...shape]), { training: true }) as tf.Tensor2D;
        return classLoss(logits, tf.tensor1d(y, "int32"));
      },
      false,
      vars,
    );
  }
  optimizer.dispose();
}

/** Trains a head on latents: logistic regression by plain SGD, the MLP by Adam. */
export function trainHead(
  cfg: HeadConfig,
  latent: number,
  mu: Float32Array,
  labels: Labels,
  n: number,
  o: FitOptions = cfg.kind === "logistic" ? LOGISTIC_FIT : MLP_FIT,
): tf.Sequential {
  const head = buildHead(latent, cfg);
  const opt = cfg.kind === "logistic"
    ? tf.train.sgd(o.learningRate)
    : tf.train.adam(o.learningRate);
  fit(head, mu, labels, n, latent, [latent], opt, o);
  return head;
}

/** Argmax predictions of a logits model over row-major features, in batches. */
export function predict(
  model: tf.LayersModel,
  features: Float32Array,
  n: number,
  shape: number[],
  batch = 1000,
): Int32Array {
  const width = shape.reduce((a, b) => a * b, 1);
  const out = new Int32Array(n);
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const p = tf.tidy(() =>
      tf.argMax(
        model.predict(
          tf.tensor(features.subarray(s * width, (s + m) * width), [m, ...shape]),
        ) as tf.Tensor2D,
        1,
      )
    );
    out.set(p.dataSync() as Int32Array, s);
    p.dispose();
  }
  return out;
}

export function accuracy(pred: Int32Array, labels: Labels): number {
  let c = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === labels[i]) c++;
  return c / pred.length;
}

export function confusion(pred: Int32Array, labels: Labels, k = NUM_CLASSES): number[][] {
  const m = Array.from({ length: k }, () => new Array(k).fill(0));
  for (let i = 0; i < pred.length; i++) m[labels[i]][pred[i]]++;
  return m;
}
