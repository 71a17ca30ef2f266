/**
 * How long the experiment's units of work take on this machine now: short runs of the real
 * loops (VAE, CNN, heads, encoding, CNN inference), timed twice at different lengths so model
 * building and the first allocating step cancel out. The parent's plan and ETA rest on it.
 */
import { encodeMu, predict, trainHead } from "../classifiers.ts";
import { knnSearch } from "../knn.ts";
import { trainPixelCnn } from "../cnn_fit.ts";
import { type Split, stratifiedSubset, take } from "../data.ts";
import { normalizePixels } from "../../common/preprocess.ts";
import { buildEncoder } from "../model.ts";
import { trainVae } from "../train.ts";
import type { ExperimentConfig } from "./config.ts";
import { CNN_INPUT, type TrainEngine, vaeTrainConfig } from "./jobs.ts";

/** Seconds per unit of work, measured on this machine now (with whatever else is running). */
export interface Calibration {
  vaeStep: number;
  cnnStep: number;
  logisticStep: number;
  mlpStep: number;
  /** Seconds per image through the encoder (encodeMu) and through the CNN (predict). */
  encodeImage: number;
  cnnPredictImage: number;
  /** Seconds per query-base pair and latent dimension of the few-label heads' kNN search. */
  knnPairDim: number;
}

function seconds(f: () => void): number {
  const t0 = performance.now();
  f();
  return (performance.now() - t0) / 1000;
}

async function secondsAsync(f: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
}

/**
 * Times short runs of the real loops and takes differences, so model building and the first
 * (slow, allocating) step cancel out. A few seconds for the full config, well under one quick.
 */
export async function calibrate(
  cfg: ExperimentConfig,
  train: Split,
  trainEngine: TrainEngine,
): Promise<Calibration> {
  const vcfg = vaeTrainConfig(cfg, cfg.table2Latent);
  const B = vcfg.batchSize;
  const vaeRun = async (steps: number) => {
    const t0 = performance.now();
    const r = await trainVae({ ...vcfg, epochs: 1 }, stratifiedSubset(train, B * steps, 7), {
      progress: false,
      log: () => {},
      engine: trainEngine,
    });
    r.models.encoder.dispose();
    r.models.decoder.dispose();
    return (performance.now() - t0) / 1000;
  };
  const v1 = await vaeRun(1), v4 = await vaeRun(4);
  const fitC = cfg.cnn.fit;
  const sub = stratifiedSubset(train, Math.max(fitC.batchSize * 4, 512), 8);
  const cnnRun = (steps: number) =>
    secondsAsync(async () => {
      (await trainPixelCnn(
        cfg.cnn.arch,
        sub,
        { ...fitC, minSteps: steps, maxSteps: steps },
        trainEngine,
      )).model.dispose();
    });
  const c1 = await cnnRun(1), c4 = await cnnRun(4);
  const L = cfg.table2Latent;
  const mu = new Float32Array(sub.count * L).map((_, i) => Math.sin(i));
  const headRun = (kind: "logistic" | "mlp", steps: number) =>
    seconds(() => {
      const fit = kind === "logistic" ? cfg.heads.logisticFit : cfg.heads.mlpFit;
      trainHead(
        kind === "logistic" ? cfg.heads.logistic : cfg.heads.mlp,
        L,
        mu,
        sub.labels,
        sub.count,
        { ...fit, minSteps: steps, maxSteps: steps },
      ).dispose();
    });
  const l1 = headRun("logistic", 10), l2 = headRun("logistic", 210);
  const m1 = headRun("mlp", 10), m2 = headRun("mlp", 210);
  const encoder = buildEncoder(vcfg.vae);
  encodeMu(encoder, L, take(sub, [0, 1])); // first call allocates; time the second
  const eTime = seconds(() => encodeMu(encoder, L, sub));
  encoder.dispose();
  const cnn =
    (await trainPixelCnn(cfg.cnn.arch, sub, { ...fitC, minSteps: 1, maxSteps: 1 }, trainEngine))
      .model;
  const px = normalizePixels(sub.images);
  const pTime = seconds(() => predict(cnn, px, sub.count, CNN_INPUT));
  cnn.dispose();
  const kx = mu.subarray(0, 512 * L);
  const kTime = seconds(() => knnSearch(kx, 512, kx, 512, L, 10, true));
  return {
    vaeStep: Math.max(1e-4, (v4 - v1) / 3),
    cnnStep: Math.max(1e-4, (c4 - c1) / 3),
    logisticStep: Math.max(1e-6, (l2 - l1) / 200),
    mlpStep: Math.max(1e-6, (m2 - m1) / 200),
    encodeImage: eTime / sub.count,
    cnnPredictImage: pTime / sub.count,
    knnPairDim: kTime / (512 * 512 * L),
  };
}
