/**
 * The training step the benchmark times, on each engine: the reference VAE with Adam 1e-3 on a
 * few fixed random batches and seeded noise (so the engines' losses must agree), a tfjs closure
 * and an onnxruntime one (one session or data-parallel lanes), and the timing of a run of steps.
 */
import * as tf from "@tensorflow/tfjs";
import { IMAGE_SIZE } from "../../common/labels.ts";
import {
  buildDecoder,
  buildEncoder,
  REFERENCE_VAE,
  reparameterize,
  splitMoments,
  vaeLoss,
} from "../../trainer/model.ts";

/** A few fixed random batches, same values on every engine (seeded). */
export function benchBatches(batch: number): tf.Tensor4D[] {
  return [0, 1, 2].map((s) =>
    tf.randomUniform([batch, IMAGE_SIZE, IMAGE_SIZE, 1], 0, 1, "float32", 100 + s)
  );
}

/** Builds the reference VAE and returns a closure running one Adam step (returns the loss). */
export function makeTrainer(batch: number) {
  const cfg = REFERENCE_VAE;
  const enc = buildEncoder(cfg), dec = buildDecoder(cfg);
  const opt = tf.train.adam(1e-3);
  const vars = [...enc.trainableWeights, ...dec.trainableWeights].map((w) =>
    (w as unknown as { val: tf.Variable }).val
  );
  const xs = benchBatches(batch);
  let step = 0;
  const run = (): number => {
    const x = xs[step % xs.length];
    // Seeds from 1: tfjs draws an unseeded (random) sample for seed 0.
    const seed = 1 + step++;
    const cost = opt.minimize(
      () => {
        const { mu, logvar } = splitMoments(enc.apply(x) as tf.Tensor2D, cfg.latent);
        const logits = dec.apply(reparameterize(mu, logvar, seed)) as tf.Tensor;
        return vaeLoss(x, logits, mu, logvar).total;
      },
      true,
      vars,
    )!;
    const v = cost.dataSync()[0];
    cost.dispose();
    return v;
  };
  const dispose = () => {
    enc.dispose();
    dec.dispose();
    opt.dispose();
    tf.dispose(xs);
  };
  return { run, dispose };
}

export function timeSteps(run: () => number, warmup: number, steps: number) {
  const losses: number[] = [];
  for (let i = 0; i < warmup; i++) losses.push(run());
  const ms: number[] = [];
  // CPU time of this process (all its threads): on shared cores the wall time mostly measures
  // the neighbours, CPU time per step does not.
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    losses.push(run());
    ms.push(performance.now() - t0);
  }
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000 / Math.max(1, steps);
  const sorted = [...ms].sort((a, b) => a - b);
  const mean = ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length);
  return {
    mean,
    median: sorted[Math.floor(sorted.length / 2)] ?? NaN,
    min: sorted[0] ?? NaN,
    cpuMs,
    losses,
  };
}

/**
 * The same training as makeTrainer (same initial weights, batches, seeded noise, Adam 1e-3) on
 * the onnxruntime training graph. Returns an async step closure (returns the loss).
 */
export async function makeOrtTrainer(
  batch: number,
  threads: number,
  lanes = 1,
  o: { splitAdam?: boolean; profileFilePrefix?: string } = {},
) {
  const cfg = REFERENCE_VAE;
  const models = { encoder: buildEncoder(cfg), decoder: buildDecoder(cfg), head: null };
  const { OrtTrainer } = await import("../../trainer/engine/ort_train.ts");
  const { OrtLanes } = await import("../../trainer/engine/ort_lanes.ts");
  const opts = {
    latent: cfg.latent,
    batchSize: batch,
    learningRate: 1e-3,
    threads,
    profileFilePrefix: o.profileFilePrefix,
  };
  const t = lanes > 1
    ? await OrtLanes.create(models, { vae: cfg, head: null }, opts, lanes, o)
    : await OrtTrainer.create(models, opts);
  const xs = benchBatches(batch).map((x) => {
    const v = x.dataSync() as Float32Array;
    x.dispose();
    return v;
  });
  let step = 0;
  const run = async (): Promise<number> => {
    const x = xs[step % xs.length];
    // Seeds from 1: tfjs draws an unseeded (random) sample for seed 0.
    const seed = 1 + step++;
    const eps = tf.tidy(() =>
      tf.randomNormal([batch, cfg.latent], 0, 1, "float32", seed).dataSync() as Float32Array
    );
    return (await t.step(x, eps)).loss;
  };
  const dispose = async () => {
    models.encoder.dispose();
    models.decoder.dispose();
    await t.dispose();
  };
  const endProfiling = () => {
    if (!(t instanceof OrtTrainer)) throw new Error("bench: only one session is profiled");
    t.endProfiling();
  };
  return { run, dispose, endProfiling };
}

export interface Timing {
  ms: number[];
  cpuMs: number;
  losses: number[];
}

export function summarize(t: Timing) {
  const sorted = [...t.ms].sort((a, b) => a - b);
  return {
    median: sorted[Math.floor(sorted.length / 2)] ?? NaN,
    min: sorted[0] ?? NaN,
    cpu: t.cpuMs / Math.max(1, t.ms.length),
  };
}
