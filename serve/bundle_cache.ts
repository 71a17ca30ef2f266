/**
 * The local cache of bundles fetched from a remote registry (HTTP or S3): one verified copy per
 * version in `<cache>/<name>/<version>/`. A download goes to a hidden temporary directory, every
 * file is checked against the manifest's size and sha256 as it arrives, and only a complete,
 * matching set is renamed into place, so the loader never sees a partial or corrupt copy. The
 * caller supplies how to read one registry-relative object; this module owns the rest.
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  MANIFEST_FILE,
  ManifestError,
  type MemoryBundle,
  readManifest,
  validateManifest,
  verifyBundleFiles,
  VERSION_ID as SAFE_ID,
} from "../bundle/mod.ts";

export class RemoteBundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RemoteBundleError";
  }
}

export interface RemoteReader {
  /** Bytes of `<name>/<version>/<file>` (registry-relative path); throws when unreadable. */
  read(rel: string): Promise<Uint8Array>;
  /** Where `rel` lives, for messages (a URL). */
  where(rel: string): string;
}

/**
 * Downloads `name@version` into memory: the manifest, validated and naming that version, then
 * every file it lists, each checked against its size and sha256 as it arrives.
 */
export async function fetchVerified(
  ref: { name: string; version: string },
  remote: RemoteReader,
): Promise<MemoryBundle & { manifestBytes: Uint8Array }> {
  const prefix = `${ref.name}/${ref.version}/`;
  const manifestBytes = await remote.read(prefix + MANIFEST_FILE);
  let manifest;
  try {
    manifest = validateManifest(JSON.parse(new TextDecoder().decode(manifestBytes)));
  } catch (e) {
    const why = e instanceof ManifestError || e instanceof SyntaxError ? e.message : String(e);
    throw new RemoteBundleError(
      `${remote.where(prefix + MANIFEST_FILE)} is not a valid manifest: ${why}`,
    );
  }
  if (manifest.version !== ref.version) {
    throw new RemoteBundleError(
      `${
        remote.where(prefix + MANIFEST_FILE)
      } declares version ${manifest.version}, the registry path says ${ref.version}`,
    );
  }
  const files = new Map<string, Uint8Array>();
  for (const f of manifest.files) {
    const bytes = await remote.read(prefix + f.path);
    const sha = createHash("sha256").update(bytes).digest("hex");
    if (bytes.length !== f.bytes || sha !== f.sha256) {
      throw new RemoteBundleError(
        `${
          remote.where(prefix + f.path)
        }: got ${bytes.length} bytes with sha256 ${sha}, the manifest expects ${f.bytes} bytes with ${f.sha256}`,
      );
    }
    files.set(f.path, bytes);
  }
  return { label: remote.where(prefix), manifest, files, manifestBytes };
}

/** Downloads and verifies `name@version` into the cache unless an intact copy is there. */
export async function cacheVersion(
  cacheDir: string,
  ref: { name: string; version: string },
  remote: RemoteReader,
): Promise<string> {
  const dest = join(cacheDir, ref.name, ref.version);
  try {
    await verifyBundleFiles(dest, await readManifest(dest));
    return dest; // already cached and intact
  } catch {
    // not cached, or damaged: fetch again
  }
  const bundle = await fetchVerified(ref, remote);
  await mkdir(join(cacheDir, ref.name), { recursive: true });
  const tmp = join(
    cacheDir,
    ref.name,
    `.${ref.version}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  try {
    await mkdir(tmp);
    for (const [path, bytes] of bundle.files) await writeFile(join(tmp, path), bytes);
    await writeFile(join(tmp, MANIFEST_FILE), bundle.manifestBytes);
    await rm(dest, { recursive: true, force: true });
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return dest;
}

/** Version ids with a copy in the cache. */
export async function cachedVersions(cacheDir: string, name: string): Promise<string[]> {
  try {
    return (await readdir(join(cacheDir, name))).filter((n) => SAFE_ID.test(n));
  } catch {
    return [];
  }
}

/** Drops cached versions other than `keep`. */
export async function retainCached(cacheDir: string, name: string, keep: string[]): Promise<void> {
  for (const v of await cachedVersions(cacheDir, name)) {
    if (!keep.includes(v)) await rm(join(cacheDir, name, v), { recursive: true, force: true });
  }
}
