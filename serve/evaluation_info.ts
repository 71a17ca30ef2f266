/**
 * The regression gate's verdict for GET /v1/models: the summary of the active bundle's
 * evaluation.json (bundle/evaluation.ts), read once per loaded model (bundles are immutable).
 * null when the bundle carries none (a first publish, an older bundle) or it cannot be read
 * from disk (a bundle loaded from memory); the model serves either way.
 */
import { type EvaluationSummary, readEvaluation, summarizeEvaluation } from "../bundle/mod.ts";
import type { LoadedModel } from "./inference/mod.ts";

const cache = new WeakMap<LoadedModel, Promise<EvaluationSummary | null>>();

export function evaluationInfo(model: LoadedModel): Promise<EvaluationSummary | null> {
  let hit = cache.get(model);
  if (!hit) {
    hit = readEvaluation(model.dir, model.manifest)
      .then((e) => (e ? summarizeEvaluation(e) : null))
      .catch(() => null);
    cache.set(model, hit);
  }
  return hit;
}
