/**
 * The write side of the S3 registry (layout in registry/registry_s3.ts), with the directory
 * registry's guarantees: a version's objects are uploaded first and its manifest.json last (a
 * version without its manifest does not exist for readers), the whole version is re-read and
 * checked against the manifest's sizes and sha256 right before CURRENT changes, HISTORY is
 * written before CURRENT and CURRENT last, versions are immutable, and pruning deletes a
 * version's manifest before its other objects. Each PUT replaces an object whole, so readers
 * see the old CURRENT or the new one. Publishers serialise on a lock object with a lease
 * (registry/s3_lock.ts): S3 offers no rename, and emulators such as s3rver ignore conditional
 * writes, so the lock, not the storage, is what keeps two publishers from interleaving.
 */
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Manifest, MANIFEST_FILE, readManifest, verifyBundleFiles } from "../bundle/mod.ts";
import { CURRENT_FILE, RegistryError } from "./registry.ts";
import { activationStack, HISTORY_FILE, type HistoryEntry, parseHistory } from "./history.ts";
import type { AugmentDecision, PublishOptions, PublishResult } from "./registry_write.ts";
import type { S3Registry } from "./registry_s3.ts";
import { SAFE_ID } from "./s3_location.ts";
import { type LockOptions, withS3Lock } from "./s3_lock.ts";
import { downloadVersion, remoteManifest, verifyRemoteVersion } from "./s3_version.ts";

export interface S3PublishOptions {
  /** Model name; defaults to the manifest's name. */
  name?: string;
  /** Loads the local bundle in a runtime and throws if it is unusable (onnxruntime, probe). */
  verify?: (dir: string, manifest: Manifest) => Promise<void>;
  /** Versions kept after publishing (the active and previous ones always are). 0 keeps all. */
  keep?: number;
  /** Upload and verify but leave CURRENT alone. */
  activate?: boolean;
  /**
   * As the directory registry's hook (registry_write.ts): adds files to a local copy of the
   * bundle, given a local copy of the version active then (its manifest and the files of
   * `activeRoles`), and may withhold activation. With it, the copy is prepared and uploaded
   * while the lock is held, so the active version cannot change under it.
   */
  augment?: PublishOptions["augment"];
  /** The active version's files the hook needs (default: every file). */
  activeRoles?: string[];
  /** Progress lines, one per step (tests kill publishers between them). */
  log?: (line: string) => void;
  lock?: LockOptions;
}

/**
 * As the directory registry's result (`dir` is the version's s3:// URL), without its clean-up
 * notes (S3 leaves no leftovers).
 */
export type S3PublishResult = Omit<PublishResult, "cleaned">;

/** HISTORY gets the new entry first, then CURRENT is replaced: the history explains CURRENT. */
async function flip(
  reg: S3Registry,
  name: string,
  version: string,
  action: HistoryEntry["action"],
  check: () => Promise<void>,
  forced?: string[],
) {
  const history = parseHistory(await reg.getText(`${name}/${HISTORY_FILE}`));
  const time = new Date().toISOString();
  history.push({ version, time, action, ...(forced ? { forced } : {}) });
  const text = history.slice(-200).map((e) => JSON.stringify(e)).join("\n") + "\n";
  await check();
  await reg.put(`${name}/${HISTORY_FILE}`, text);
  await check();
  await reg.put(`${name}/${CURRENT_FILE}`, version + "\n");
}

/**
 * Which versions pruning removes: beyond `keep`, most recently activated first, never the
 * protected ones (active, previous, and `also`: a version just published but kept inactive).
 */
export function pruneChoice(
  versions: string[],
  history: HistoryEntry[],
  current: string | null,
  keep: number,
  also?: string,
): string[] {
  if (keep <= 0) return [];
  const stack = activationStack(history);
  const protectedSet = new Set([current, stack[stack.length - 1], stack[stack.length - 2], also]);
  const lastUse = new Map<string, number>();
  history.forEach((e, i) => lastUse.set(e.version, i));
  const sorted = [...versions].sort((a, b) =>
    (lastUse.get(b) ?? -1) - (lastUse.get(a) ?? -1) || (a < b ? 1 : -1)
  );
  let kept = 0;
  return sorted.filter((v) => {
    if (protectedSet.has(v) || kept < keep) {
      kept++;
      return false;
    }
    return true;
  });
}

/** Caller holds the lock. The manifest goes first, so a half-deleted version is incomplete. */
async function pruneLocked(
  reg: S3Registry,
  name: string,
  keep: number,
  check: () => Promise<void>,
  also?: string,
) {
  const history = parseHistory(await reg.getText(`${name}/${HISTORY_FILE}`));
  const current = await reg.readCurrent(name);
  const versions = (await reg.versions(name)).map((v) => v.version);
  const doomed = pruneChoice(versions, history, current, keep, also);
  for (const v of doomed) {
    await check();
    await reg.delete([`${name}/${v}/${MANIFEST_FILE}`]);
    const rest = (await reg.list(`${name}/${v}/`)).map((o) => o.rel);
    await reg.delete(rest);
  }
  return doomed;
}

export async function pruneS3(
  reg: S3Registry,
  name: string,
  keep: number,
  lock?: LockOptions,
): Promise<string[]> {
  return await withS3Lock(reg, name, (check) => pruneLocked(reg, name, keep, check), lock);
}

/**
 * Makes a complete version the active one after re-checking its objects; `forced` (the
 * regressions --force overrode) goes into its HISTORY line.
 */
export async function activateVersionS3(
  reg: S3Registry,
  name: string,
  version: string,
  action: HistoryEntry["action"] = "activate",
  lock?: LockOptions,
  forced?: string[],
): Promise<{ previous: string | null }> {
  if (!SAFE_ID.test(version)) {
    throw new RegistryError("no-version", `Version "${version}" is not a plain id`);
  }
  return await withS3Lock(reg, name, async (check) => {
    await verifyRemoteVersion(reg, name, version);
    const previous = await reg.readCurrent(name);
    await flip(reg, name, version, action, check, forced);
    return { previous };
  }, lock);
}

/** Re-activates the version active before the current one, skipping pruned versions. */
export async function rollbackS3(
  reg: S3Registry,
  name: string,
  lock?: LockOptions,
): Promise<{ from: string | null; to: string }> {
  return await withS3Lock(reg, name, async (check) => {
    const current = await reg.readCurrent(name);
    const stack = activationStack(parseHistory(await reg.getText(`${name}/${HISTORY_FILE}`)));
    if (current !== null && stack[stack.length - 1] !== current) stack.push(current);
    for (let i = stack.length - 2; i >= 0; i--) {
      const v = stack[i];
      if (v === current || (await remoteManifest(reg, name, v)) === null) continue;
      await verifyRemoteVersion(reg, name, v);
      await flip(reg, name, v, "rollback", check);
      return { from: current, to: v };
    }
    throw new RegistryError(
      "no-version",
      `Cannot roll back model "${name}": the history in ${reg.url} names no earlier version that still exists`,
    );
  }, lock);
}

/** Uploads every file of the local bundle `dir`, then its manifest (create-only). */
async function uploadVersion(
  reg: S3Registry,
  name: string,
  dir: string,
  manifest: Manifest,
  log: (line: string) => void,
): Promise<void> {
  const at = `${name}/${manifest.version}/`;
  for (const f of manifest.files) {
    await reg.put(at + f.path, await readFile(join(dir, f.path)));
    log(`uploaded ${f.path}`);
  }
  // Create-only where the service supports it: two publishers cannot both create it.
  await reg.put(at + MANIFEST_FILE, await readFile(join(dir, MANIFEST_FILE)), {
    ifNoneMatch: "*",
  });
  log(`uploaded ${MANIFEST_FILE}`);
}

/**
 * The augment hook on S3 (caller holds the lock): a local copy of the bundle and of the active
 * version (if another one is), the hook, the same checks of the copy as before, the upload.
 */
async function uploadAugmented(
  reg: S3Registry,
  name: string,
  srcDir: string,
  manifest: Manifest,
  opts: S3PublishOptions,
  log: (line: string) => void,
): Promise<AugmentDecision | void> {
  const work = await mkdtemp(join(tmpdir(), "s3-publish-"));
  try {
    const copy = join(work, "candidate");
    await cp(srcDir, copy, { recursive: true });
    const current = await reg.readCurrent(name);
    const old = current !== null && current !== manifest.version
      ? await remoteManifest(reg, name, current)
      : null;
    let active = null;
    if (old !== null) {
      active = { version: current!, dir: join(work, "active") };
      await downloadVersion(reg, name, old, active.dir, opts.activeRoles);
      log(`downloaded ${current} (the active version)`);
    }
    const decision = await opts.augment!(copy, manifest, active);
    const m = await readManifest(copy);
    await verifyBundleFiles(copy, m);
    await opts.verify?.(copy, m);
    await uploadVersion(reg, name, copy, m, log);
    return decision;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Publishes the local bundle `src`: checks it (manifest, checksums, `opts.verify`), uploads
 * every file and then the manifest unless the version is already there with the same files
 * (a different bundle under an existing version id is refused), then, holding the lock,
 * re-verifies the stored version, flips CURRENT and prunes. With `opts.augment` the upload
 * happens under the lock, after the hook. On any failure CURRENT is untouched.
 */
export async function publishBundleS3(
  reg: S3Registry,
  src: string,
  opts: S3PublishOptions = {},
): Promise<S3PublishResult> {
  const log = opts.log ?? (() => {});
  const srcDir = resolve(src);
  const manifest = await readManifest(srcDir);
  await verifyBundleFiles(srcDir, manifest);
  await opts.verify?.(srcDir, manifest);
  const name = opts.name ?? manifest.name;
  if (!SAFE_ID.test(name)) {
    throw new RegistryError("no-model", `Model name "${name}" is not a plain name`);
  }
  const version = manifest.version;
  log(`verified ${srcDir}`);
  let copied = false;
  if (!opts.augment && (await remoteManifest(reg, name, version)) === null) {
    await uploadVersion(reg, name, srcDir, manifest, log);
    copied = true;
  }
  return await withS3Lock(reg, name, async (check) => {
    log("locked");
    let decision: AugmentDecision | void = undefined;
    if (opts.augment && (await remoteManifest(reg, name, version)) === null) {
      decision = await uploadAugmented(reg, name, srcDir, manifest, opts, log);
      copied = true;
      await check();
    }
    await verifyRemoteVersion(reg, name, version, manifest);
    log("verified remote copy");
    const previous = await reg.readCurrent(name);
    const activated = opts.activate !== false && decision?.activate !== false;
    if (activated && previous !== version) {
      await flip(reg, name, version, "publish", check, decision?.forced);
      log("wrote CURRENT");
    }
    const pruned = await pruneLocked(reg, name, opts.keep ?? 0, check, version);
    const dir = reg.where(`${name}/${version}/`);
    return { name, version, dir, previous, copied, activated, pruned };
  }, opts.lock);
}
