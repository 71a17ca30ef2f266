/**
 * The regression gate on publish: the candidate and the active version run their real ONNX
 * serving graphs (fp32, on onnxruntime-node, as the server would) on exactly the same held-out
 * images (trainer/gate_data.ts), and the candidate is refused when its overall accuracy drops
 * by more than maxDrop points, any class by more than maxClassDrop, or the share of images
 * flagged novel (each version at its own calibrated threshold) moves by more than
 * maxNoveltyShift. The comparison is written into the candidate as evaluation.json
 * (bundle/evaluation.ts) whatever the verdict, so a refused version stays inspectable.
 */
import {
  encodeEach,
  type Evaluation,
  EVALUATION_FILE,
  EVALUATION_FORMAT,
  EVALUATION_ROLE,
  findRegressions,
  type GateLimits,
  type Graph,
  type GraphRuntime,
  LATENT_TRANSLATION_ROLE,
  type Manifest,
  noveltyFeatures,
  noveltyScorer,
  openGraphs,
  servingNames,
  type VersionScore,
} from "../bundle/mod.ts";
import { argmax } from "../common/argmax.ts";
import { addBundleFile } from "./bundle_add.ts";
import { type EvalDataOptions, type EvalSet, evalSetDigest, evaluationSet } from "./gate_data.ts";

/** Limits of issue #16: half a point overall, three points per class, two points of novelty. */
export const DEFAULT_LIMITS: Readonly<GateLimits> = Object.freeze({
  maxDrop: 0.5,
  maxClassDrop: 3,
  maxNoveltyShift: 2,
});

export interface GateOptions extends EvalDataOptions {
  limits?: Partial<GateLimits>;
  /** Activate even when regressions are found (the verdict is then "forced"). */
  force?: boolean;
}

/** A candidate the gate refused: the message names every regression. */
export class GateRefusedError extends Error {
  constructor(message: string, readonly evaluation: Evaluation | null) {
    super(message);
    this.name = "GateRefusedError";
  }
}

/** Top labels (as indices into set.labelNames) and novelty flags of one version on the set. */
async function predict(
  dir: string,
  manifest: Manifest,
  runtime: GraphRuntime<Graph>,
  set: EvalSet,
): Promise<{ pred: Int32Array; novel: Uint8Array | null }> {
  const toSet = manifest.labels.map((l) => set.labelNames.indexOf(l));
  const missing = set.labelNames.filter((l) => !manifest.labels.includes(l));
  if (missing.length) {
    throw new Error(
      `${manifest.version} has no class ${
        missing.map((l) => `"${l}"`).join(", ")
      } of the evaluation images (its labels: ${manifest.labels.join(", ")})`,
    );
  }
  const graphs = await openGraphs(dir, { ...manifest, decoder: null }, runtime);
  const cal = manifest.novelty;
  const scorer = cal ? noveltyScorer(cal) : null;
  const K = manifest.labels.length, L = manifest.latentSize;
  const pred = new Int32Array(set.count);
  const novel = cal ? new Uint8Array(set.count) : null;
  try {
    await encodeEach(graphs.model, servingNames(manifest), set.images, set.count, (b) => {
      for (let i = 0; i < b.count; i++) {
        pred[b.start + i] = toSet[argmax(b.probabilities, i * K, K)];
      }
      if (!cal || !scorer || !novel) return;
      const f = noveltyFeatures(cal.features, b, b.count, L);
      for (let i = 0; i < b.count; i++) {
        novel[b.start + i] = scorer.score(f, i * scorer.dims) > cal.threshold.score ? 1 : 0;
      }
    });
  } finally {
    await graphs.model.release();
  }
  return { pred, novel };
}

/** Overall and per-class accuracy and the novel share of predictions on the set. */
export function scoreOf(
  version: string,
  set: EvalSet,
  pred: Int32Array,
  novel: Uint8Array | null,
  threshold: number | null,
): VersionScore {
  const K = set.labelNames.length;
  const right = new Float64Array(K), total = new Float64Array(K);
  let correct = 0, flagged = 0;
  for (let i = 0; i < set.count; i++) {
    const y = set.labels[i];
    total[y]++;
    if (pred[i] === y) (right[y]++, correct++);
    if (novel?.[i]) flagged++;
  }
  return {
    version,
    accuracy: correct / set.count,
    perClass: Array.from(right, (r, k) => (total[k] ? r / total[k] : 0)),
    novelShare: novel ? flagged / set.count : null,
    noveltyThreshold: threshold,
  };
}

export interface Side {
  dir: string;
  manifest: Manifest;
}

/** Scores both versions on `set` and compares them under `limits`. */
export async function compareOn(
  set: EvalSet,
  active: Side,
  candidate: Side,
  runtime: GraphRuntime<Graph>,
  limits: GateLimits,
  force = false,
): Promise<Evaluation> {
  const a = await predict(active.dir, active.manifest, runtime, set);
  const c = await predict(candidate.dir, candidate.manifest, runtime, set);
  const th = (m: Manifest) => m.novelty?.threshold.score ?? null;
  const as = scoreOf(active.manifest.version, set, a.pred, a.novel, th(active.manifest));
  const cs = scoreOf(candidate.manifest.version, set, c.pred, c.novel, th(candidate.manifest));
  let agree = 0;
  for (let i = 0; i < set.count; i++) if (a.pred[i] === c.pred[i]) agree++;
  const regressions = findRegressions(set.labelNames, as, cs, limits);
  const perClass = set.labelNames.map(() => 0);
  for (let i = 0; i < set.count; i++) perClass[set.labels[i]]++;
  return {
    format: EVALUATION_FORMAT,
    created: new Date().toISOString(),
    data: {
      source: set.source,
      description: set.description,
      images: set.count,
      perClass,
      sha256: evalSetDigest(set),
    },
    labels: set.labelNames,
    active: as,
    candidate: cs,
    agreement: agree / set.count,
    limits,
    regressions,
    verdict: regressions.length === 0 ? "passed" : force ? "forced" : "refused",
  };
}

/**
 * The active version's files the gate reads besides its manifest: the fp32 serving graph, the
 * latent translation (loading a graph checks it) and the held-out record. An S3 publish
 * downloads only these.
 */
export const GATE_ACTIVE_ROLES: readonly string[] = ["model", LATENT_TRANSLATION_ROLE, "held-out"];

/**
 * Runs the gate for a candidate against the active version and, with `record` (a candidate in
 * the registry's temporary copy), writes evaluation.json into it; without (`publish promote`:
 * a version already in the registry, which never changes) only scores. Returns the
 * evaluation; the caller decides activation from its verdict. Throws GateRefusedError (no
 * evaluation) when the images cannot be chosen or scored, unless `force`: then it is null.
 */
export async function gateCandidate(
  candidate: Side,
  active: Side,
  runtime: GraphRuntime<Graph>,
  opts: GateOptions = {},
  record = true,
): Promise<Evaluation | null> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  let e: Evaluation;
  try {
    const set = await evaluationSet(active.manifest, active.dir, opts);
    e = await compareOn(set, active, candidate, runtime, limits, opts.force);
  } catch (err) {
    const why = `Cannot run the regression gate against ${active.manifest.version}: ${
      (err as Error).message
    }`;
    if (!opts.force) throw new GateRefusedError(why, null);
    log(`${why}; --force: going on without it`);
    return null;
  }
  if (record) {
    const bytes = new TextEncoder().encode(JSON.stringify(e, null, 2) + "\n");
    await addBundleFile(candidate.dir, EVALUATION_ROLE, EVALUATION_FILE, bytes);
  }
  log(gateLine(e, Math.round(performance.now() - t0)));
  return e;
}

const pct = (v: number | null) => (v === null ? "n/a" : `${(100 * v).toFixed(1)}%`);

/** The one log line of a gate run. */
export function gateLine(e: Evaluation, ms: number): string {
  return `regression gate ${e.active.version} -> ${e.candidate.version} on ${e.data.images} images (${e.data.description}) in ${ms} ms: ` +
    `accuracy ${pct(e.active.accuracy)} -> ${pct(e.candidate.accuracy)}, agreement ${
      pct(e.agreement)
    }, novel share ${pct(e.active.novelShare)} -> ${pct(e.candidate.novelShare)}: ${e.verdict}`;
}
