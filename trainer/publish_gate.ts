/**
 * The regression gate's part of the publish CLI (trainer/gate.ts does the evaluation): its
 * flags, the augment step that scores the candidate against the active version inside the
 * registry's temporary copy and withholds activation on a regression, the refusal of a
 * version refused before (republished or activated without --force), and the evaluation
 * shown by `publish list`. With no active version (a first publish) there is nothing to gate.
 */
import { join } from "node:path";
import {
  describeRegression,
  type Evaluation,
  type Graph,
  type GraphRuntime,
  type Manifest,
  readEvaluation,
  readManifest,
  summarizeEvaluation,
} from "../bundle/mod.ts";
import { FlagError, type FlagSpecs } from "../common/flags.ts";
import { exists } from "../registry/registry.ts";
import { readCurrentState } from "../registry/registry_write.ts";
import type { AugmentDecision } from "../registry/registry_write.ts";
import { DEFAULT_LIMITS, gateCandidate, type GateOptions, GateRefusedError } from "./gate.ts";

export { type GateOptions, GateRefusedError } from "./gate.ts";

export const GATE_FLAGS = {
  "max-drop": {
    type: "number",
    default: DEFAULT_LIMITS.maxDrop,
    help: "regression gate: largest overall accuracy drop accepted, in points",
  },
  "max-class-drop": {
    type: "number",
    default: DEFAULT_LIMITS.maxClassDrop,
    help: "regression gate: largest accuracy drop accepted in any class, in points",
  },
  "max-novelty-shift": {
    type: "number",
    default: DEFAULT_LIMITS.maxNoveltyShift,
    help: "regression gate: largest change of the share flagged novel, in points",
  },
  "eval-data": {
    type: "string",
    help:
      "regression gate: images both versions are scored on (IDX dir or image dataset; default: the active version's held-out set)",
  },
  "eval-images": {
    type: "int",
    default: 0,
    help: "regression gate: score only the first N of those images (0: all)",
  },
  force: {
    type: "boolean",
    default: false,
    help: "activate despite the regression gate (recorded in HISTORY)",
  },
} satisfies FlagSpecs;

/** The gate's options from parsed flags (GATE_FLAGS). */
export function gateOptionsFrom(
  f: Record<string, unknown>,
  log: (s: string) => void,
): GateOptions {
  for (const key of ["max-drop", "max-class-drop", "max-novelty-shift"]) {
    if (!((f[key] as number) >= 0)) throw new FlagError(`--${key} must be >= 0, got ${f[key]}`);
  }
  return {
    limits: {
      maxDrop: f["max-drop"] as number,
      maxClassDrop: f["max-class-drop"] as number,
      maxNoveltyShift: f["max-novelty-shift"] as number,
    },
    evalData: f["eval-data"] as string | undefined,
    dataDir: f["data-dir"] as string | undefined,
    images: f["eval-images"] as number,
    force: f.force as boolean,
    log,
  };
}

/** The message of a refusal: every regression on its own line. */
export function refusalMessage(e: Evaluation, version: string): string {
  return `The regression gate refused ${version} against ${e.active.version} on ${e.data.images} images ` +
    `(${e.data.description}); it is kept in the registry but not activated (CURRENT is still ${e.active.version}; --force activates it):\n` +
    e.regressions.map((r) => `  ${describeRegression(r, e.limits)}`).join("\n");
}

/**
 * The augment step: runs the gate against the active version (none: first publish, no gate)
 * and tells the registry whether to activate. `outcome` receives the evaluation.
 */
export function gateStep(
  opts: GateOptions,
  runtime: () => Promise<GraphRuntime<Graph>>,
  outcome: { evaluation: Evaluation | null },
) {
  return async (
    dir: string,
    manifest: Manifest,
    active: { version: string; dir: string } | null,
  ): Promise<AugmentDecision> => {
    if (!active) return {};
    const side = { dir: active.dir, manifest: await readManifest(active.dir) };
    const e = await gateCandidate({ dir, manifest }, side, await runtime(), opts);
    outcome.evaluation = e;
    if (e === null) return { forced: ["no evaluation: the gate could not run"] };
    const lines = e.regressions.map((r) => describeRegression(r, e.limits));
    if (e.verdict === "refused") return { activate: false };
    return opts.force ? { forced: lines } : {};
  };
}

/** The evaluation a version in the registry carries, or null (none, or unreadable). */
export async function evaluationOf(versionDir: string): Promise<Evaluation | null> {
  try {
    return await readEvaluation(versionDir, await readManifest(versionDir));
  } catch {
    return null;
  }
}

/**
 * Refuses to activate (republish or `activate`) a version the gate refused, unless forced;
 * returns what HISTORY records (the overridden regressions) or undefined.
 */
export async function checkRefusedBefore(
  modelDir: string,
  version: string,
  force: boolean,
): Promise<string[] | undefined> {
  const dir = join(modelDir, version);
  if (!(await exists(dir))) return undefined;
  if ((await readCurrentState(modelDir)).named === version) return undefined;
  const e = await evaluationOf(dir);
  if (!e || e.verdict !== "refused") return undefined;
  const lines = e.regressions.map((r) => describeRegression(r, e.limits));
  if (force) return lines;
  throw new GateRefusedError(
    `${version} was refused by the regression gate against ${e.active.version} (${e.created}):\n` +
      lines.map((l) => `  ${l}`).join("\n") + "\npass --force to activate it anyway",
    e,
  );
}

/** One `publish list` line: the version, the active mark and the gate's verdict. */
export function listLine(version: string, active: boolean, e: Evaluation | null): string {
  let gate = "";
  if (e) {
    const s = summarizeEvaluation(e);
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
    gate = `  gate ${s.verdict} vs ${s.against}: ${pct(s.accuracy.active)} -> ${
      pct(s.accuracy.candidate)
    } (${s.drop > 0 ? "-" : "+"}${
      Math.abs(s.drop).toFixed(1)
    } points; worst class "${s.worstClass.label}" ${s.worstClass.drop > 0 ? "-" : "+"}${
      Math.abs(s.worstClass.drop).toFixed(1)
    })`;
  }
  return `${active ? "*" : " "} ${version}${gate}`;
}
