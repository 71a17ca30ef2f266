/**
 * Novelty in the service: turns a model's calibration (manifest `novelty`, bundle/novelty.ts)
 * into the `novelty` field of every /v1/classify and /v1/latent answer, computed from the
 * encoder's outputs and the input images of the same request, so both backends give it with
 * no extra graph run. A bundle without calibration is served with novelty marked unavailable.
 * The threshold is the bundle's (its held-out 95th percentile by default) unless the server
 * was started with another percentile (--novelty-percentile).
 */
import {
  type NoveltyCalibration,
  noveltyFeatures,
  type NoveltyScorer,
  noveltyScorer,
  percentileOf,
  thresholdAt,
} from "../bundle/mod.ts";
import type { EncodeOutput, LoadedModel } from "./inference/mod.ts";

export interface NoveltyField {
  available: boolean;
  score: number | null;
  percentile: number | null;
  outOfDistribution: boolean | null;
}

export const NOVELTY_UNAVAILABLE: NoveltyField = Object.freeze({
  available: false,
  score: null,
  percentile: null,
  outOfDistribution: null,
});

/** A model's prepared scorer and threshold. */
export class NoveltyJudge {
  readonly #scorer: NoveltyScorer;
  readonly threshold: { percentile: number; score: number };

  constructor(
    readonly calibration: NoveltyCalibration,
    readonly latentSize: number,
    percentile?: number,
  ) {
    this.#scorer = noveltyScorer(calibration);
    this.threshold = percentile === undefined ? calibration.threshold : {
      percentile,
      score: thresholdAt(calibration.percentiles, percentile),
    };
  }

  /** One novelty field per image of `out`; `images` are the graph's inputs (count x 784). */
  judge(out: EncodeOutput, images: Float32Array): NoveltyField[] {
    const n = out.count, d = this.#scorer.dims;
    const x = noveltyFeatures(this.calibration.features, { ...out, images }, n, this.latentSize);
    const res = new Array<NoveltyField>(n);
    for (let i = 0; i < n; i++) {
      const score = this.#scorer.score(x, i * d);
      res[i] = {
        available: true,
        score,
        percentile: percentileOf(this.calibration.percentiles, score),
        outOfDistribution: score > this.threshold.score,
      };
    }
    return res;
  }
}

/**
 * The judge of `model` at `percentile` (undefined: the bundle's threshold), or null when the
 * bundle has no calibration. Built once per loaded model and kept with it.
 */
export function noveltyJudge(model: LoadedModel, percentile?: number): NoveltyJudge | null {
  let byPct = cache.get(model);
  if (!byPct) cache.set(model, byPct = new Map());
  const key = percentile ?? -1;
  let j = byPct.get(key);
  if (j === undefined) {
    const cal = model.manifest.novelty;
    j = cal ? new NoveltyJudge(cal, model.latentSize, percentile) : null;
    byPct.set(key, j);
  }
  return j;
}

const cache = new WeakMap<LoadedModel, Map<number, NoveltyJudge | null>>();

/** Novelty fields for a batch: calibrated, or all unavailable. */
export function noveltyFields(
  judge: NoveltyJudge | null,
  out: EncodeOutput,
  images: Float32Array,
): NoveltyField[] {
  return judge ? judge.judge(out, images) : new Array(out.count).fill(NOVELTY_UNAVAILABLE);
}

/** What /v1/models says about a model's novelty calibration. */
export function noveltyInfo(judge: NoveltyJudge | null) {
  if (!judge) return { available: false };
  const c = judge.calibration;
  return {
    available: true,
    method: c.method,
    features: c.features,
    covariance: c.covariance,
    threshold: judge.threshold,
    heldOut: c.heldOut,
  };
}
