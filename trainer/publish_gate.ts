/**
 * The regression gate's part of the publish CLI (trainer/gate.ts does the evaluation): its
 * flags, the augment step that scores the candidate against the active version inside the
 * registry's temporary copy and withholds activation on a regression, the gated publish on
 * any registry (a directory or S3, through GatedTarget), the refusal of a version refused
 * before (republished or activated without --force), the gate of `publish promote`, and the
 * evaluation shown by `publish list`. With no active version (a first publish) there is
 * nothing to gate.
 */
import { join, resolve } from "node:path";
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
import {
  type AugmentDecision,
  type PublishOptions,
  type PublishResult,
  readCurrentState,
} from "../registry/registry_write.ts";
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

type Runtime = () => Promise<GraphRuntime<Graph>>;

/** What an evaluation (null: the gate could not run, --force) means for activation. */
function decisionOf(e: Evaluation | null, force: boolean): AugmentDecision {
  if (e === null) return { forced: ["no evaluation: the gate could not run"] };
  if (e.verdict === "refused") return { activate: false };
  return force ? { forced: e.regressions.map((r) => describeRegression(r, e.limits)) } : {};
}

/**
 * The augment step: runs the gate against the active version (none: first publish, no gate)
 * and tells the registry whether to activate. `outcome` receives the evaluation.
 */
export function gateStep(
  opts: GateOptions,
  runtime: Runtime,
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
    return decisionOf(e, opts.force === true);
  };
}

/** What a gated publish needs of a registry: a directory (publish.ts) or S3 (publish_s3.ts). */
export interface GatedTarget {
  /** The gate's record of `version` when the registry holds it and it is not active, or null. */
  inactiveEvaluation(version: string): Promise<Evaluation | null>;
  /** Copies the bundle in, running `augment` on it, and activates it if both allow. */
  publish(
    activate: boolean,
    augment: NonNullable<PublishOptions["augment"]>,
  ): Promise<PublishResult>;
  /** Activates `version` past the gate, HISTORY recording the regressions overridden. */
  activate(version: string, forced: string[]): Promise<void>;
}

/**
 * Publishes `manifest`'s bundle with the regression gate, on any registry: the gate runs on the
 * copy against the active version, then `translate` (when the gate lets it activate); a
 * refusal keeps the copy inactive and throws GateRefusedError naming every regression.
 */
export async function publishGated(
  manifest: Manifest,
  gate: GateOptions,
  runtime: Runtime,
  target: GatedTarget,
  translate?: NonNullable<PublishOptions["augment"]>,
): Promise<PublishResult> {
  const before = await target.inactiveEvaluation(manifest.version);
  const forcedBefore = forcedPast(manifest.version, before, gate.force === true);
  const outcome = { evaluation: null as Evaluation | null };
  const step = gateStep(gate, runtime, outcome);
  // A version refused before is forced through by target.activate, which records it.
  const r = await target.publish(forcedBefore === undefined, async (dir, m, active) => {
    const decision = await step(dir, m, active);
    // A refused version stays inactive: its translation waits until it is published again.
    if (decision.activate !== false) await translate?.(dir, m, active);
    return decision;
  });
  if (!r.activated && outcome.evaluation) {
    throw new GateRefusedError(refusalMessage(outcome.evaluation, r.version), outcome.evaluation);
  }
  if (forcedBefore) {
    await target.activate(r.version, forcedBefore);
    gate.log?.(`--force: activated ${r.version} despite: ${forcedBefore.join("; ")}`);
    return { ...r, activated: true };
  }
  return r;
}

/**
 * The gate of `publish promote` (a hook of registry/traffic.ts promoteCanary): the canary's
 * version, already in the registry, against the active one, as a publish would gate it. A
 * regression throws the publish's GateRefusedError unless --force; returns what HISTORY records
 * as forced. No evaluation.json is written: a version directory never changes.
 */
export function promotionGate(registry: string, name: string, opts: GateOptions, runtime: Runtime) {
  const modelDir = join(resolve(registry), name);
  const side = async (v: string) => ({
    dir: join(modelDir, v),
    manifest: await readManifest(join(modelDir, v)),
  });
  return async (version: string): Promise<string[] | undefined> => {
    const active = (await readCurrentState(modelDir)).version;
    if (active === null || active === version) return undefined; // nothing to compare with
    const [candidate, was] = [await side(version), await side(active)];
    const e = await gateCandidate(candidate, was, await runtime(), opts, false);
    if (e?.verdict === "refused") throw new GateRefusedError(refusalMessage(e, version), e);
    return decisionOf(e, opts.force === true).forced;
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

/** The evaluation of `version` in a registry directory when it is there but not active. */
export async function inactiveEvaluation(
  modelDir: string,
  version: string,
): Promise<Evaluation | null> {
  const dir = join(modelDir, version);
  if (!(await exists(dir))) return null;
  if ((await readCurrentState(modelDir)).named === version) return null;
  return await evaluationOf(dir);
}

/** forcedPast for `version` in a registry directory. */
export async function checkRefusedBefore(
  modelDir: string,
  version: string,
  force: boolean,
): Promise<string[] | undefined> {
  return forcedPast(version, await inactiveEvaluation(modelDir, version), force);
}

/**
 * Refuses to activate (republish or `activate`) a version the gate refused (`e`, its record
 * while inactive), unless forced; returns what HISTORY records (the overridden regressions).
 */
export function forcedPast(
  version: string,
  e: Evaluation | null,
  force: boolean,
): string[] | undefined {
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
