/**
 * The study's model-selection protocol (--vae-candidates K, issue #20): per latent, K VAEs that
 * differ only in seed are trained without labels, each is scored by how well a logistic head on
 * its latent classifies a validation split taken from the training set, and every cell runs on
 * the best one. The test set takes no part in the choice.
 *
 * With K > 1 the validation images are the last VALIDATION_COUNT of a fixed permutation of the
 * training indices; every labelled subset (heads, CNN, the selection head itself) is drawn from
 * the other images, so no cell in any seed trains on an image the choice was scored on. With
 * K = 1 nothing is held out and subsets are drawn exactly as before (same numbers as without the
 * flag).
 */
import { type Labels, rng, shuffle, stratifiedIndices } from "../data.ts";
import type { ExperimentConfig } from "./config.ts";

/** Training images held out to score the candidates. */
export const VALIDATION_COUNT = 5000;
/**
 * Labelled non-validation images the selection head trains on: 2,000, the largest N of the
 * seeded (mean of 3) cells, where our latents are furthest below the study; a logistic head on
 * 2,000 rows costs seconds, so scoring adds little to a candidate's VAE training.
 */
export const SELECT_SAMPLES = 2000;

export interface CandidateScore {
  latent: number;
  candidate: number;
  /** The VAE's seed (the default VAE's seed + candidate). */
  seed: number;
  /** Accuracy of the selection head on the validation images. */
  validationAcc: number;
  validationCount: number;
  selectSamples: number;
  trainSeconds: number;
  cached: boolean;
  checkpoint: string;
}

/** Per latent: every candidate's score and the one picked once all are in. */
export interface VaeSelection {
  candidates: CandidateScore[];
  picked: number | null;
}

export function candidatesOf(cfg: ExperimentConfig): number {
  return cfg.vaeCandidates ?? 1;
}

/** Subsets' seeds are dataSeed + k and the VAE subset's dataSeed - 1; these two are apart. */
function validationSeed(cfg: ExperimentConfig): number {
  return cfg.dataSeed - 2;
}
function selectSeed(cfg: ExperimentConfig): number {
  return cfg.dataSeed - 3;
}

/** The held-out training indices (ascending); empty with K = 1. */
export function validationIndices(cfg: ExperimentConfig, trainCount: number): Int32Array {
  if (candidatesOf(cfg) <= 1) return new Int32Array(0);
  if (trainCount <= VALIDATION_COUNT) {
    throw new RangeError(
      `--vae-candidates needs more than ${VALIDATION_COUNT} training images to hold out a validation split, got ${trainCount}`,
    );
  }
  const perm = Int32Array.from({ length: trainCount }, (_, i) => i);
  shuffle(perm, rng(validationSeed(cfg)));
  return perm.subarray(trainCount - VALIDATION_COUNT).sort();
}

/** Training indices a labelled subset may use (ascending): all but the validation images. */
export function labelledPool(cfg: ExperimentConfig, trainCount: number): Int32Array {
  const held = new Uint8Array(trainCount);
  for (const i of validationIndices(cfg, trainCount)) held[i] = 1;
  const out = new Int32Array(trainCount - held.reduce((a, b) => a + b, 0));
  let k = 0;
  for (let i = 0; i < trainCount; i++) if (!held[i]) out[k++] = i;
  return out;
}

/** Largest labelled N a cell can have (60,000 with K = 1). */
export function maxLabelled(cfg: ExperimentConfig, trainCount = 60000): number {
  return candidatesOf(cfg) > 1 ? trainCount - VALIDATION_COUNT : trainCount;
}

/**
 * The labelled subset of a cell: stratifiedIndices over the whole training set with K = 1 (as
 * before), over the non-validation pool with K > 1.
 */
export function labelledIndices(
  cfg: ExperimentConfig,
  labels: Labels,
  n: number,
  seed: number,
): Int32Array {
  if (candidatesOf(cfg) <= 1) return stratifiedIndices(labels, n, seed);
  const pool = labelledPool(cfg, labels.length);
  const poolLabels = labels instanceof Uint16Array
    ? new Uint16Array(pool.length)
    : new Uint8Array(pool.length);
  for (let i = 0; i < pool.length; i++) poolLabels[i] = labels[pool[i]];
  return stratifiedIndices(poolLabels, n, seed).map((i) => pool[i]);
}

/** The selection head's labelled images (non-validation, their own seed). */
export function selectionIndices(cfg: ExperimentConfig, labels: Labels): Int32Array {
  const n = Math.min(SELECT_SAMPLES, maxLabelled(cfg, labels.length));
  return labelledIndices(cfg, labels, n, selectSeed(cfg));
}

/** The candidate with the highest validation accuracy; ties go to the lower index. */
export function pickCandidate(scores: CandidateScore[]): number {
  if (scores.length === 0) throw new Error("no VAE candidate has been scored");
  let best = scores[0];
  for (const s of scores) {
    if (
      s.validationAcc > best.validationAcc ||
      (s.validationAcc === best.validationAcc && s.candidate < best.candidate)
    ) best = s;
  }
  return best.candidate;
}

/** Records a candidate's score; once all K are in, the pick. Returns the latent's selection. */
export function recordCandidate(
  selections: Record<string, VaeSelection>,
  s: CandidateScore,
  k: number,
): VaeSelection {
  const sel = selections[s.latent] ?? { candidates: [], picked: null };
  sel.candidates = [...sel.candidates.filter((c) => c.candidate !== s.candidate), s]
    .sort((a, b) => a.candidate - b.candidate);
  sel.picked = sel.candidates.length >= k ? pickCandidate(sel.candidates) : null;
  selections[s.latent] = sel;
  return sel;
}
