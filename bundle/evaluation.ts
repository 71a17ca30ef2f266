/**
 * The regression gate's record a bundle may carry (role "evaluation", evaluation.json): the
 * candidate and the version active when it was published, scored on the same held-out images
 * (overall and per-class accuracy, the share flagged novel at each version's own threshold,
 * how often their top labels agree), the limits applied, the regressions found and the verdict
 * (passed, refused, or forced through with --force). The publisher writes it
 * (trainer/gate.ts), `publish list` and GET /v1/models show its summary. Accuracies and shares
 * are fractions in [0, 1]; limits and changes are percentage points.
 */
import { readFile } from "node:fs/promises";
import type { Manifest } from "./manifest.ts";
import { BundleError, bundleFile } from "./read.ts";

export const EVALUATION_FILE = "evaluation.json";
export const EVALUATION_FORMAT = "latent-edge/evaluation@1";
export const EVALUATION_ROLE = "evaluation";

/** One version's scores on the gate's images. */
export interface VersionScore {
  version: string;
  accuracy: number;
  /** Accuracy per class, in the order of Evaluation.labels. */
  perClass: number[];
  /** Share of the images scoring above the version's own novelty threshold; null: no calibration. */
  novelShare: number | null;
  /** The threshold score used (manifest novelty.threshold.score); null without calibration. */
  noveltyThreshold: number | null;
}

/** The gate's limits, in percentage points. */
export interface GateLimits {
  maxDrop: number;
  maxClassDrop: number;
  maxNoveltyShift: number;
}

export interface Regression {
  kind: "overall" | "class" | "novelty";
  /** The class, for kind "class". */
  label?: string;
  active: number;
  candidate: number;
  /** Drop in points (active - candidate); for novelty the absolute shift. */
  points: number;
}

export type Verdict = "passed" | "refused" | "forced";

export interface Evaluation {
  format: typeof EVALUATION_FORMAT;
  created: string;
  /** Which images: where they came from, how many, per class, and a digest of pixels + labels. */
  data: { source: string; description: string; images: number; perClass: number[]; sha256: string };
  labels: string[];
  active: VersionScore;
  candidate: VersionScore;
  /** Share of images on which both versions give the same top label. */
  agreement: number;
  limits: GateLimits;
  regressions: Regression[];
  verdict: Verdict;
}

/** Rounds for the record: 1e-6 of a fraction is far below one image in a million. */
const r6 = (v: number) => Math.round(v * 1e6) / 1e6;

/** What the gate refuses: overall or class drops and novelty shifts beyond the limits. */
export function findRegressions(
  labels: readonly string[],
  active: VersionScore,
  candidate: VersionScore,
  limits: GateLimits,
): Regression[] {
  const out: Regression[] = [];
  const drop = (a: number, c: number) => r6(100 * (a - c));
  if (drop(active.accuracy, candidate.accuracy) > limits.maxDrop) {
    const points = drop(active.accuracy, candidate.accuracy);
    out.push({ kind: "overall", active: active.accuracy, candidate: candidate.accuracy, points });
  }
  labels.forEach((label, k) => {
    const [a, c] = [active.perClass[k], candidate.perClass[k]];
    if (drop(a, c) > limits.maxClassDrop) {
      out.push({ kind: "class", label, active: a, candidate: c, points: drop(a, c) });
    }
  });
  const [na, nc] = [active.novelShare, candidate.novelShare];
  // Both versions must be calibrated: a share against "no novelty" is no comparison.
  if (na !== null && nc !== null && Math.abs(drop(na, nc)) > limits.maxNoveltyShift) {
    out.push({ kind: "novelty", active: na, candidate: nc, points: Math.abs(drop(na, nc)) });
  }
  return out;
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

/** One line per regression, e.g. `class "Shirt" 16.5% -> 3.0% (-13.5 points, limit 3)`. */
export function describeRegression(r: Regression, limits: GateLimits): string {
  const pts = r.points.toFixed(1);
  if (r.kind === "overall") {
    return `overall accuracy ${pct(r.active)} -> ${
      pct(r.candidate)
    } (-${pts} points, limit ${limits.maxDrop})`;
  }
  if (r.kind === "class") {
    return `class "${r.label}" ${pct(r.active)} -> ${
      pct(r.candidate)
    } (-${pts} points, limit ${limits.maxClassDrop})`;
  }
  return `novel share ${pct(r.active)} -> ${
    pct(r.candidate)
  } (${pts} points, limit ${limits.maxNoveltyShift})`;
}

/** The short form `publish list` and GET /v1/models show. */
export interface EvaluationSummary {
  verdict: Verdict;
  /** The version the candidate was compared with. */
  against: string;
  images: number;
  accuracy: { active: number; candidate: number };
  /** Overall drop in points (negative: the candidate is better). */
  drop: number;
  /** The class that dropped most, and by how many points. */
  worstClass: { label: string; drop: number };
  novelShare: { active: number | null; candidate: number | null };
  agreement: number;
  regressions: string[];
}

export function summarizeEvaluation(e: Evaluation): EvaluationSummary {
  const drops = e.labels.map((label, k) => ({
    label,
    drop: r6(100 * (e.active.perClass[k] - e.candidate.perClass[k])),
  }));
  return {
    verdict: e.verdict,
    against: e.active.version,
    images: e.data.images,
    accuracy: { active: e.active.accuracy, candidate: e.candidate.accuracy },
    drop: r6(100 * (e.active.accuracy - e.candidate.accuracy)),
    worstClass: drops.reduce((w, d) => (d.drop > w.drop ? d : w)),
    novelShare: { active: e.active.novelShare, candidate: e.candidate.novelShare },
    agreement: e.agreement,
    regressions: e.regressions.map((r) => describeRegression(r, e.limits)),
  };
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isShare = (v: unknown) => typeof v === "number" && v >= 0 && v <= 1;

function checkScore(v: unknown, field: string, k: number): void {
  if (!isObj(v)) throw new Error(`"${field}" is not an object`);
  if (typeof v.version !== "string") throw new Error(`"${field}.version" is not a string`);
  if (!isShare(v.accuracy)) throw new Error(`"${field}.accuracy" is not a share in [0, 1]`);
  if (!Array.isArray(v.perClass) || v.perClass.length !== k || !v.perClass.every(isShare)) {
    throw new Error(`"${field}.perClass" is not ${k} shares in [0, 1]`);
  }
  if (v.novelShare !== null && !isShare(v.novelShare)) {
    throw new Error(`"${field}.novelShare" is neither null nor a share in [0, 1]`);
  }
}

/** Checks a parsed evaluation.json; throws naming the first bad field. */
export function validateEvaluation(raw: unknown): Evaluation {
  if (!isObj(raw)) throw new Error("it is not a JSON object");
  if (raw.format !== EVALUATION_FORMAT) {
    throw new Error(`"format" is ${JSON.stringify(raw.format)}, expected "${EVALUATION_FORMAT}"`);
  }
  const labels = raw.labels;
  if (!Array.isArray(labels) || labels.length < 2 || !labels.every((l) => typeof l === "string")) {
    throw new Error(`"labels" is not a list of at least 2 class names`);
  }
  checkScore(raw.active, "active", labels.length);
  checkScore(raw.candidate, "candidate", labels.length);
  if (!isShare(raw.agreement)) throw new Error(`"agreement" is not a share in [0, 1]`);
  const data = raw.data as Obj;
  if (!isObj(data) || typeof data.images !== "number" || data.images < 1) {
    throw new Error(`"data.images" is not a positive count`);
  }
  const limits = raw.limits as Obj;
  if (
    !isObj(limits) ||
    !["maxDrop", "maxClassDrop", "maxNoveltyShift"].every((key) => typeof limits[key] === "number")
  ) {
    throw new Error(`"limits" is not {maxDrop, maxClassDrop, maxNoveltyShift}`);
  }
  if (!Array.isArray(raw.regressions)) throw new Error(`"regressions" is not a list`);
  if (!["passed", "refused", "forced"].includes(raw.verdict as string)) {
    throw new Error(`"verdict" is ${JSON.stringify(raw.verdict)}, not passed, refused or forced`);
  }
  return raw as unknown as Evaluation;
}

/** The bundle's evaluation, or null when it carries none; a bad file is a BundleError. */
export async function readEvaluation(dir: string, manifest: Manifest): Promise<Evaluation | null> {
  if (!manifest.files.some((f) => f.role === EVALUATION_ROLE)) return null;
  const path = bundleFile(dir, manifest, EVALUATION_ROLE);
  try {
    return validateEvaluation(JSON.parse(await readFile(path, "utf8")));
  } catch (e) {
    throw new BundleError(
      dir,
      EVALUATION_FILE,
      `Cannot use ${EVALUATION_FILE}: ${(e as Error).message}`,
    );
  }
}
