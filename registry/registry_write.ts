/**
 * The write side of the model registry (registry/registry.ts reads it). Layout per model:
 * `<registry>/<name>/<version>/` one immutable bundle, `<name>/CURRENT` the active version id,
 * `<name>/HISTORY` one JSON line per activation (publish, activate, rollback), which is how
 * rollback knows the previous version. Every change a reader can see is a rename: a bundle is
 * copied into a hidden temporary directory and renamed into place, and CURRENT/HISTORY are
 * written to a temporary file and renamed over the old one, so readers (servers watching the
 * directory, possibly on other hosts) see the old state or the new one, never half of either.
 * Writers take a per-model lock (registry/registry_lock.ts: a dead holder's lock is broken, and
 * temporary entries left by dead writers are removed) so two publishers do not interleave.
 * No bundle validation here beyond the manifest and checksums: the caller passes a `verify`
 * hook that loads the copy in a runtime (trainer/publish.ts does it with onnxruntime).
 * Pure node:fs/promises, for Deno and Node.
 */
import { cp, mkdir, readFile, rename, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { readManifest, verifyBundleFiles } from "../bundle/mod.ts";
import type { Manifest } from "../bundle/mod.ts";
import { CURRENT_FILE, exists, listVersions, RegistryError } from "./registry.ts";
import { type HeldLock, tmpName, withRegistryLock } from "./registry_lock.ts";
import {
  activationStack,
  appendHistory,
  type HistoryEntry,
  readHistory,
  SAFE_ID,
  writeFileAtomic,
} from "./history.ts";

export { type HeldLock, withRegistryLock } from "./registry_lock.ts";
export {
  activationStack,
  appendHistory,
  HISTORY_FILE,
  type HistoryEntry,
  readHistory,
  writeFileAtomic,
} from "./history.ts";

/** Roles of files the publisher adds to a bundle (PublishOptions.augment), not the exporter. */
const ADDED_ROLES = new Set(["latent-translation", "evaluation"]);

/** Whether two manifests list the same exported files (files the publisher added aside). */
export function sameExportedFiles(a: Manifest, b: Manifest): boolean {
  const own = (m: Manifest) => JSON.stringify(m.files.filter((f) => !ADDED_ROLES.has(f.role)));
  return own(a) === own(b);
}

export interface PublishOptions {
  /** Registry root (default "models"). */
  registry: string;
  /** Model name; defaults to the manifest's name. */
  name?: string;
  /** Loads the copied bundle in a runtime and throws if it is unusable (onnxruntime, probe). */
  verify?: (dir: string, manifest: Manifest) => Promise<void>;
  /** Versions kept after publishing (the active and previous ones always are). 0 keeps all. */
  keep?: number;
  /** Copy and verify but leave CURRENT alone. */
  activate?: boolean;
  /** Longest wait for another live publisher's lock, ms (default 30 s). */
  lockWaitMs?: number;
  /**
   * Adds files to the registry's temporary copy before it is verified, given the version active
   * then (the publisher fits the latent translation and runs the regression gate here). Files
   * it adds must be in the manifest. It may withhold activation (the copy is still kept).
   */
  augment?: (
    dir: string,
    manifest: Manifest,
    active: { version: string; dir: string } | null,
  ) => Promise<void | AugmentDecision>;
}

/** What an augment hook decided: `activate: false` keeps the version inactive. */
export interface AugmentDecision {
  activate?: boolean;
  /** Recorded with the activation in HISTORY (e.g. the regressions --force overrode). */
  forced?: string[];
}

export interface PublishResult {
  name: string;
  version: string;
  dir: string;
  /** The version that was active before, if any. */
  previous: string | null;
  /** False when the version was already in the registry with identical files. */
  copied: boolean;
  /** False when CURRENT was left alone (opts.activate false, or the augment hook withheld it). */
  activated: boolean;
  pruned: string[];
  /** What was left by interrupted writers and removed before publishing (one note each). */
  cleaned: string[];
}

/** What CURRENT holds: a version id whose directory exists, or why it cannot be used. */
export interface CurrentState {
  /** The id CURRENT names when it is well-formed (it may still name a missing directory). */
  named: string | null;
  /** The id when it is well-formed and its directory holds a manifest; else null. */
  version: string | null;
  /** Why CURRENT is unusable (missing, empty, garbage, names a missing version); null if fine. */
  problem: string | null;
}

export async function readCurrentState(modelDir: string): Promise<CurrentState> {
  const path = join(modelDir, CURRENT_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return { named: null, version: null, problem: `${path} is missing` };
  }
  const v = text.trim();
  if (v === "") return { named: null, version: null, problem: `${path} is empty` };
  if (!SAFE_ID.test(v)) {
    return {
      named: null,
      version: null,
      problem: `${path} holds ${JSON.stringify(text.slice(0, 40))}, not a version id`,
    };
  }
  if (!(await exists(join(modelDir, v, "manifest.json")))) {
    return { named: v, version: null, problem: `${path} names ${v}, which is not in the registry` };
  }
  return { named: v, version: v, problem: null };
}

async function readCurrentOrNull(modelDir: string): Promise<string | null> {
  return (await readCurrentState(modelDir)).named;
}

/** Points CURRENT at `version` and appends to HISTORY; caller holds the lock. */
async function flip(
  modelDir: string,
  version: string,
  action: HistoryEntry["action"],
  forced?: string[],
) {
  const time = new Date().toISOString();
  await appendHistory(modelDir, { version, time, action, ...(forced ? { forced } : {}) });
  // CURRENT last: it is what servers react to, and the history must already explain it.
  await writeFileAtomic(join(modelDir, CURRENT_FILE), version + "\n");
}

function modelDirOf(registry: string, name: string): string {
  if (!SAFE_ID.test(name)) {
    throw new RegistryError("no-model", `Model name "${name}" is not a plain directory name`);
  }
  return join(resolve(registry), name);
}

/**
 * Makes `version` (already in the registry) the active one: checks its manifest and checksums,
 * then flips CURRENT, whatever CURRENT held before (this is how an operator repairs a damaged
 * one). Returns the previously active version and what the lock holder cleaned.
 */
export async function activateVersion(
  registry: string,
  name: string,
  version: string,
  action: HistoryEntry["action"] = "activate",
  forced?: string[],
): Promise<{ previous: string | null; cleaned: string[]; repaired: string | null }> {
  const modelDir = modelDirOf(registry, name);
  if (!SAFE_ID.test(version)) {
    throw new RegistryError("no-version", `Version "${version}" is not a plain directory name`);
  }
  const dir = join(modelDir, version);
  if (!(await exists(dir))) {
    const known = (await listVersions(registry, name).catch(() => [])).map((v) => v.version);
    throw new RegistryError(
      "no-version",
      `Cannot activate ${name}@${version}: ${dir} does not exist (versions: ${
        known.join(", ") || "none"
      })`,
    );
  }
  const manifest = await readManifest(dir);
  await verifyBundleFiles(dir, manifest);
  return await withRegistryLock(modelDir, async ({ cleaned }) => {
    const state = await readCurrentState(modelDir);
    await flip(modelDir, version, action, forced);
    return { previous: state.named, cleaned, repaired: state.problem };
  });
}

export interface RollbackResult {
  from: string | null;
  to: string;
  cleaned: string[];
  /** Set when CURRENT was damaged: what was wrong with it (HISTORY decided the target). */
  repaired: string | null;
}

/** Can `v` be activated: its manifest reads and its files match their checksums. */
async function usable(modelDir: string, v: string): Promise<boolean> {
  const dir = join(modelDir, v);
  if (!(await exists(join(dir, "manifest.json")))) return false;
  try {
    await verifyBundleFiles(dir, await readManifest(dir));
    return true;
  } catch {
    return false;
  }
}

/**
 * Re-activates the version that was active before the current one (see activationStack).
 * Works when CURRENT is damaged (missing, empty, garbage, naming a missing version): the
 * active version is then HISTORY's top, and rollback goes below it; if nothing usable is
 * below, it restores the top itself, so the registry is serving again either way.
 */
export async function rollback(registry: string, name: string): Promise<RollbackResult> {
  const modelDir = modelDirOf(registry, name);
  return await withRegistryLock(modelDir, async ({ cleaned }) => {
    const state = await readCurrentState(modelDir);
    const stack = activationStack(await readHistory(modelDir));
    const current = state.named;
    if (current !== null && stack[stack.length - 1] !== current) stack.push(current); // hand-edited CURRENT
    const top = stack[stack.length - 1];
    // Walk down past versions that were pruned, removed by hand or damaged.
    const candidates = stack.slice(0, -1).reverse().filter((v) => v !== top);
    if (state.problem !== null && top !== undefined && top !== state.named) candidates.push(top);
    for (const v of candidates) {
      if (!(await usable(modelDir, v))) continue;
      await flip(modelDir, v, "rollback");
      return { from: current, to: v, cleaned, repaired: state.problem };
    }
    const present = (await listVersions(registry, name)).map((v) => v.version);
    throw new RegistryError(
      "no-version",
      `Cannot roll back model "${name}": the history of ${modelDir} names no earlier version that still exists${
        state.problem ? ` (${state.problem})` : ""
      }; versions present: ${
        present.join(", ") || "none"
      } (make one active with: activate <version>)`,
    );
  });
}

/**
 * Removes old versions so at most `keep` remain, most recently activated first (then newest
 * id). Never removes the active or the previous version, nor unknown entries. Caller holds
 * the lock. Returns the removed versions.
 */
async function pruneLocked(
  modelDir: string,
  registry: string,
  name: string,
  keep: number,
  also?: string,
) {
  if (keep <= 0) return [];
  const current = await readCurrentOrNull(modelDir);
  const stack = activationStack(await readHistory(modelDir));
  // `also`: a version just published but kept inactive stays for inspection.
  const protectedSet = new Set([current, stack[stack.length - 1], stack[stack.length - 2], also]);
  const lastUse = new Map<string, number>();
  (await readHistory(modelDir)).forEach((e, i) => lastUse.set(e.version, i));
  const versions = (await listVersions(registry, name)).map((v) => v.version);
  versions.sort((a, b) => (lastUse.get(b) ?? -1) - (lastUse.get(a) ?? -1) || (a < b ? 1 : -1));
  const removed: string[] = [];
  let kept = 0;
  for (const v of versions) {
    if (protectedSet.has(v) || kept < keep) {
      kept++;
      continue;
    }
    // Rename first so a reader never loads a half-deleted bundle, then delete.
    const trash = join(modelDir, tmpName(`trash-${v}`));
    await rename(join(modelDir, v), trash);
    await rm(trash, { recursive: true, force: true });
    removed.push(v);
  }
  return removed;
}

export async function prune(
  registry: string,
  name: string,
  keep: number,
  log?: (note: string) => void,
): Promise<string[]> {
  const modelDir = modelDirOf(registry, name);
  return await withRegistryLock(modelDir, async ({ cleaned }) => {
    cleaned.forEach((n) => log?.(n));
    return await pruneLocked(modelDir, registry, name, keep);
  });
}

/** Copies `srcDir` in under `dest` unless an identical copy is there; caller holds the lock. */
async function copyIn(
  srcDir: string,
  dest: string,
  manifest: Manifest,
  label: string,
  opts: Pick<PublishOptions, "verify" | "augment">,
): Promise<{ copied: boolean; decision: AugmentDecision | void }> {
  const verify = opts.verify;
  if (await exists(dest)) {
    const theirs = await readManifest(dest).catch(() => null);
    const same = theirs !== null && sameExportedFiles(theirs, manifest);
    if (!same) {
      throw new RegistryError(
        "no-version",
        `Cannot publish ${label}: ${dest} already exists with different files (versions are immutable; export a new version)`,
      );
    }
    await verifyBundleFiles(dest, theirs);
    await verify?.(dest, theirs);
    return { copied: false, decision: undefined };
  }
  // Copy beside the destination (same filesystem, so the rename is atomic), verify, rename.
  const modelDir = resolve(dest, "..");
  const tmp = join(modelDir, tmpName(`incoming-${manifest.version}`));
  try {
    await cp(srcDir, tmp, { recursive: true });
    let decision: AugmentDecision | void = undefined;
    if (opts.augment) {
      const active = await readCurrentOrNull(modelDir);
      const activeDir = active && active !== manifest.version ? join(modelDir, active) : null;
      decision = await opts.augment(
        tmp,
        manifest,
        activeDir && (await exists(activeDir)) ? { version: active!, dir: activeDir } : null,
      );
    }
    const copy = await readManifest(tmp);
    await verifyBundleFiles(tmp, copy);
    await verify?.(tmp, copy);
    await rename(tmp, dest);
    return { copied: true, decision };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Publishes the bundle in `src`: validates its manifest and checksums, then, holding the lock,
 * copies it into a temporary directory inside the registry, verifies the copy (checksums
 * again, then `opts.verify`), renames it to `<name>/<version>/`, flips CURRENT and prunes. A
 * version already present is reused when its files are identical (so the same bundle published
 * twice at once succeeds twice) and refused otherwise (versions are immutable: servers may
 * already run them). On any failure CURRENT is untouched.
 */
export async function publishBundle(src: string, opts: PublishOptions): Promise<PublishResult> {
  const srcDir = resolve(src);
  const manifest = await readManifest(srcDir);
  await verifyBundleFiles(srcDir, manifest);
  const name = opts.name ?? manifest.name;
  const modelDir = modelDirOf(opts.registry, name);
  const version = manifest.version;
  const dest = join(modelDir, version);
  await mkdir(modelDir, { recursive: true });
  return await withRegistryLock(modelDir, async ({ cleaned }: HeldLock) => {
    const { copied, decision } = await copyIn(srcDir, dest, manifest, `${name}@${version}`, opts);
    const previous = await readCurrentOrNull(modelDir);
    // A writer killed between HISTORY and CURRENT leaves them disagreeing: flip again to heal it.
    const top = activationStack(await readHistory(modelDir)).at(-1);
    const activate = opts.activate !== false && decision?.activate !== false;
    if (activate && (previous !== version || top !== version)) {
      await flip(modelDir, version, "publish", decision?.forced);
    }
    const pruned = await pruneLocked(modelDir, opts.registry, name, opts.keep ?? 0, version);
    return { name, version, dir: dest, previous, copied, activated: activate, pruned, cleaned };
  }, { waitMs: opts.lockWaitMs });
}
