/**
 * The one training loop of the pixel-CNN baseline (the architecture is ./model.ts
 * buildPixelCnn), used by the experiments and the tests alike. Two things a short budget needs
 * beyond a plain loop: the Adam rate decays along a half cosine to 0 (with a constant rate the
 * last steps keep bouncing instead of settling), and each image is shifted by a few random
 * pixels (zero fill), which cuts the overfitting at small N. Seeded: the same options and
 * engine give the same model.
 *
 * Engine "ort" runs each step (forward, backward, Adam) as one onnxruntime graph
 * (./engine/ort_train.ts, gradients tested equal to tfjs's); "tfjs" runs it on the tfjs
 * backend. Same loop, batches and schedule; only dropout draws its masks from a different
 * stream.
 */
import * as tf from "@tensorflow/tfjs";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { rng, shuffle, type Split } from "./data.ts";
import { OrtTrainer } from "./engine/ort_train.ts";
import type { TrainEngine } from "./engine/choice.ts";
import { classLoss } from "./model.ts";
import { buildPixelCnn, type CnnConfig } from "./model_cnn.ts";

/** The CNN baseline's loop settings: Adam with a cosine-decayed rate and random-shift augmentation. */
export interface CnnFit {
  /** Passes over the N samples, bounded by minSteps (tiny N still converge) and maxSteps (budget). */
  epochs: number;
  minSteps: number;
  maxSteps: number;
  batchSize: number;
  /** Peak Adam rate; decays to 0 along a half cosine over the run's steps. */
  learningRate: number;
  /** Each training image is shifted by up to this many pixels in x and y (0 disables). */
  shift: number;
  seed: number;
}

/** The study's settings (./experiments/config.ts FULL_CONFIG uses them as they are). */
export const CNN_FIT: Readonly<CnnFit> = Object.freeze({
  epochs: 13,
  minSteps: 600,
  maxSteps: 6000,
  batchSize: 128,
  learningRate: 2e-3,
  shift: 1,
  seed: 3,
});

/** Steps the loop runs for N samples (also used by the experiments' time estimate). */
export function cnnSteps(n: number, o: CnnFit): number {
  const B = Math.min(o.batchSize, n);
  return Math.min(o.maxSteps, Math.max(o.minSteps, Math.ceil((o.epochs * n) / B)));
}

/**
 * Writes image `row` of `images` (uint8) into `out` at `at`, normalised to [0,1] and shifted by
 * (dx, dy) pixels; pixels shifted in from outside are 0 (the dataset's dark background).
 */
export function shiftInto(
  images: Uint8Array,
  row: number,
  dx: number,
  dy: number,
  out: Float32Array,
  at: number,
): void {
  const src = row * PIXELS;
  for (let y = 0; y < IMAGE_SIZE; y++) {
    const sy = y - dy;
    const o = at + y * IMAGE_SIZE;
    if (sy < 0 || sy >= IMAGE_SIZE) {
      out.fill(0, o, o + IMAGE_SIZE);
      continue;
    }
    for (let x = 0; x < IMAGE_SIZE; x++) {
      const sx = x - dx;
      out[o + x] = sx < 0 || sx >= IMAGE_SIZE ? 0 : images[src + sy * IMAGE_SIZE + sx] / 255;
    }
  }
}

/** Cosine-decayed rate at `step` of `steps`: peak at step 0, 0 after the last step. */
export function cosineRate(peak: number, step: number, steps: number): number {
  return 0.5 * peak * (1 + Math.cos((Math.PI * step) / steps));
}

/**
 * Trains the pixel CNN on a labelled split; returns the model and the steps run. `onProgress`
 * hears about every tenth of the run (long cells are otherwise silent for many minutes).
 */
export async function trainPixelCnn(
  arch: CnnConfig,
  split: Split,
  o: CnnFit,
  engine: TrainEngine = "tfjs",
  onProgress?: (step: number, steps: number) => void,
): Promise<{ model: tf.Sequential; steps: number }> {
  const model = buildPixelCnn(arch);
  const n = split.count;
  const B = Math.min(o.batchSize, n);
  const perEpoch = Math.max(1, Math.floor(n / B));
  const steps = cnnSteps(n, o);
  const rand = rng(o.seed);
  const rows = Int32Array.from({ length: n }, (_, i) => i);
  const x = new Float32Array(B * PIXELS);
  const y = new Int32Array(B);
  const span = 2 * o.shift + 1;
  const ort = engine === "ort"
    ? await OrtTrainer.createClassifier(model, {
      batchSize: B,
      learningRate: o.learningRate,
      dropoutSeed: o.seed,
    })
    : null;
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const optimizer = ort ? null : tf.train.adam(o.learningRate);
  try {
    for (let step = 0; step < steps; step++) {
      const k = step % perEpoch;
      if (k === 0) shuffle(rows, rand);
      for (let i = 0; i < B; i++) {
        const r = rows[k * B + i];
        const dx = o.shift > 0 ? Math.floor(rand() * span) - o.shift : 0;
        const dy = o.shift > 0 ? Math.floor(rand() * span) - o.shift : 0;
        shiftInto(split.images, r, dx, dy, x, i * PIXELS);
        y[i] = split.labels[r];
      }
      const rate = cosineRate(o.learningRate, step, steps);
      if (ort) {
        ort.learningRate = rate;
        await ort.classifierStep(x, y);
      } else {
        // tfjs's Adam reads its public rate on every update, so the schedule is a plain assignment.
        (optimizer as unknown as { learningRate: number }).learningRate = rate;
        optimizer!.minimize(
          () => {
            const logits = model.apply(tf.tensor4d(x, [B, IMAGE_SIZE, IMAGE_SIZE, 1]), {
              training: true,
            }) as tf.Tensor2D;
            return classLoss(logits, tf.tensor1d(y, "int32"));
          },
          false,
          vars,
        );
      }
      if (
        onProgress && (step + 1) % Math.max(1, Math.round(steps / 10)) === 0 && step + 1 < steps
      ) onProgress(step + 1, steps);
    }
    ort?.writeTo({ classifier: model });
  } finally {
    optimizer?.dispose();
    await ort?.dispose();
  }
  return { model, steps };
}
