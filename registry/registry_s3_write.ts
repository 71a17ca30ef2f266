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
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { readManifest, verifyBundleFiles } from "../bundle/mod.ts";
import { type Manifest, MANIFEST_FILE, ManifestError, validateManifest } from "../bundle/mod.ts";
import { CURRENT_FILE, RegistryError } from "./registry.ts";
import { activationStack, HISTORY_FILE, type HistoryEntry, parseHistory } from "./history.ts";
import type { PublishResult } from "./registry_write.ts";

export { parseHistory } from "./history.ts";
import type { S3Registry } from "./registry_s3.ts";
import { SAFE_ID } from "./s3_location.ts";
import { type LockOptions, withS3Lock } from "./s3_lock.ts";

export interface S3PublishOptions {
  /** Model name; defaults to the manifest's name. */
  name?: string;
  /** Loads the local bundle in a runtime and throws if it is unusable (onnxruntime, probe). */
  verify?: (dir: string, manifest: Manifest) => Promise<void>;
  /** Versions kept after publishing (the active and previous ones always are). 0 keeps all. */
  keep?: number;
  /** Upload and verify but leave CURRENT alone. */
  activate?: boolean;
  /** Progress lines, one per step (tests kill publishers between them). */
  log?: (line: string) => void;
  lock?: LockOptions;
}

/**
 * As the directory registry's result (`dir` is the version's s3:// URL), without its clean-up
 * notes (S3 leaves no leftovers) and its activated flag (the S3 publisher does not report it).
 */
export type S3PublishResult = Omit<PublishResult, "cleaned" | "activated">;

/** The manifest stored for `name@version`, or null when the version is absent or incomplete. */
export async function remoteManifest(
  reg: S3Registry,
  name: string,
  version: string,
): Promise<Manifest | null> {
  const rel = `${name}/${version}/${MANIFEST_FILE}`;
  const text = await reg.getText(rel);
  if (text === null) return null;
  try {
    return validateManifest(JSON.parse(text));
  } catch (e) {
    const why = e instanceof ManifestError || e instanceof SyntaxError ? e.message : String(e);
    throw new RegistryError("no-version", `${reg.where(rel)} is not a valid manifest: ${why}`);
  }
}

/**
 * Re-reads every object of a version and checks it against its manifest (and, when given,
 * that the manifest lists the same files as `expected`). Throws naming the object at fault.
 */
export async function verifyRemoteVersion(
  reg: S3Registry,
  name: string,
  version: string,
  expected?: Manifest,
): Promise<Manifest> {
  const m = await remoteManifest(reg, name, version);
  if (m === null) {
    throw new RegistryError(
      "no-version",
      `${name}@${version} is not complete in ${reg.url}: ${
        reg.where(`${name}/${version}/${MANIFEST_FILE}`)
      } does not exist`,
    );
  }
  if (m.version !== version) {
    throw new RegistryError(
      "no-version",
      `${reg.where(`${name}/${version}/${MANIFEST_FILE}`)} declares version ${m.version}`,
    );
  }
  if (expected && JSON.stringify(m.files) !== JSON.stringify(expected.files)) {
    throw new RegistryError(
      "no-version",
      `Cannot publish ${name}@${version}: ${reg.url} already holds that version with different files (versions are immutable; export a new version)`,
    );
  }
  for (const f of m.files) {
    const rel = `${name}/${version}/${f.path}`;
    const o = await reg.get(rel);
    if (o === null) throw new RegistryError("no-version", `${reg.where(rel)} is missing`);
    const sha = createHash("sha256").update(o.bytes).digest("hex");
    if (o.bytes.length !== f.bytes || sha !== f.sha256) {
      throw new RegistryError(
        "no-version",
        `${
          reg.where(rel)
        }: ${o.bytes.length} bytes with sha256 ${sha}, the manifest expects ${f.bytes} bytes with ${f.sha256}`,
      );
    }
  }
  return m;
}

/** HISTORY gets the new entry first, then CURRENT is replaced: the history explains CURRENT. */
async function flip(
  reg: S3Registry,
  name: string,
  version: string,
  action: HistoryEntry["action"],
  check: () => Promise<void>,
) {
  const history = parseHistory(await reg.getText(`${name}/${HISTORY_FILE}`));
  history.push({ version, time: new Date().toISOString(), action });
  const text = history.slice(-200).map((e) => JSON.stringify(e)).join("\n") + "\n";
  await check();
  await reg.put(`${name}/${HISTORY_FILE}`, text);
  await check();
  await reg.put(`${name}/${CURRENT_FILE}`, version + "\n");
}

/** Which versions pruning removes: beyond `keep`, most recently activated first, never protected. */
export function pruneChoice(
  versions: string[],
  history: HistoryEntry[],
  current: string | null,
  keep: number,
): string[] {
  if (keep <= 0) return [];
  const stack = activationStack(history);
  const protectedSet = new Set([current, stack[stack.length - 1], stack[stack.length - 2]]);
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
) {
  const history = parseHistory(await reg.getText(`${name}/${HISTORY_FILE}`));
  const current = await reg.readCurrent(name);
  const versions = (await reg.versions(name)).map((v) => v.version);
  const doomed = pruneChoice(versions, history, current, keep);
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

/** Makes a complete version the active one after re-checking its objects. */
export async function activateVersionS3(
  reg: S3Registry,
  name: string,
  version: string,
  action: HistoryEntry["action"] = "activate",
  lock?: LockOptions,
): Promise<{ previous: string | null }> {
  if (!SAFE_ID.test(version)) {
    throw new RegistryError("no-version", `Version "${version}" is not a plain id`);
  }
  return await withS3Lock(reg, name, async (check) => {
    await verifyRemoteVersion(reg, name, version);
    const previous = await reg.readCurrent(name);
    await flip(reg, name, version, action, check);
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

/**
 * Publishes the local bundle `src`: checks it (manifest, checksums, `opts.verify`), uploads
 * every file and then the manifest unless the version is already there with the same files
 * (a different bundle under an existing version id is refused), then, holding the lock,
 * re-verifies the stored version, flips CURRENT and prunes. On any failure CURRENT is untouched.
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
  const existing = await remoteManifest(reg, name, version);
  let copied = false;
  if (existing === null) {
    for (const f of manifest.files) {
      await reg.put(`${name}/${version}/${f.path}`, await readFile(join(srcDir, f.path)));
      log(`uploaded ${f.path}`);
    }
    // Create-only where the service supports it: two publishers cannot both create it.
    await reg.put(
      `${name}/${version}/${MANIFEST_FILE}`,
      await readFile(join(srcDir, MANIFEST_FILE)),
      { ifNoneMatch: "*" },
    );
    log(`uploaded ${MANIFEST_FILE}`);
    copied = true;
  }
  return await withS3Lock(reg, name, async (check) => {
    log("locked");
    await verifyRemoteVersion(reg, name, version, manifest);
    log("verified remote copy");
    const previous = await reg.readCurrent(name);
    if (opts.activate !== false && previous !== version) {
      await flip(reg, name, version, "publish", check);
      log("wrote CURRENT");
    }
    const pruned = await pruneLocked(reg, name, opts.keep ?? 0, check);
    return { name, version, dir: reg.where(`${name}/${version}/`), previous, copied, pruned };
  }, opts.lock);
}
