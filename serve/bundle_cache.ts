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
  filesFor,
  MANIFEST_FILE,
  ManifestError,
  type MemoryBundle,
  readManifest,
  type RoleChoice,
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
  /**
   * Bytes of `<name>/<version>/<file>` (registry-relative path); throws when unreadable.
   * `expect` is the size the manifest declares, when known (a reader may read into a buffer of
   * that size; the caller still checks the length it gets).
   */
  read(rel: string, expect?: number): Promise<Uint8Array>;
  /** Where `rel` lives, for messages (a URL). */
  where(rel: string): string;
}

/**
 * Downloads `name@version` into memory: the manifest, validated and naming that version, then
 * each file it lists of the roles `roles` picks (default: all), each checked against its size
 * and sha256 as it arrives.
 */
export async function fetchVerified(
  ref: { name: string; version: string },
  remote: RemoteReader,
  roles?: RoleChoice,
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
  for (const f of filesFor(manifest, roles?.(manifest))) {
    const bytes = await remote.read(prefix + f.path, f.bytes);
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

/**
 * Downloads and verifies `name@version` (its files of the roles `roles` picks, default all)
 * into the cache unless an intact copy of those is there.
 */
export async function cacheVersion(
  cacheDir: string,
  ref: { name: string; version: string },
  remote: RemoteReader,
  roles?: RoleChoice,
): Promise<string> {
  const dest = join(cacheDir, ref.name, ref.version);
  try {
    const cached = await readManifest(dest);
    await verifyBundleFiles(dest, cached, roles?.(cached));
    return dest; // already cached and intact
  } catch {
    // not cached, or damaged: fetch again
  }
  const bundle = await fetchVerified(ref, remote, roles);
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

/**
 * Reads a response body into `alloc(expect)` with no other copy and, where the body is a byte
 * stream (Deno's fetch), no buffer of the stream's own: a BYOB reader writes into it. A body
 * of the expected size fills that buffer exactly; a longer one spills into a fresh, larger
 * buffer, so the caller's size check sees its real length either way.
 */
export async function readBodyInto(
  res: Response,
  expect: number,
  alloc: (bytes: number) => Uint8Array,
): Promise<Uint8Array> {
  const buf = alloc(expect);
  if (!res.body) return buf.subarray(0, 0);
  let byob: ReadableStreamBYOBReader;
  try {
    byob = res.body.getReader({ mode: "byob" });
  } catch {
    return await readChunks(res.body.getReader(), buf);
  }
  let view = buf, n = 0;
  for (;;) {
    if (n === view.length) {
      // A full buffer still needs one read to see the end: into a byte of its own.
      const { done, value } = await byob.read(new Uint8Array(1));
      if (done) return view;
      const bigger = new Uint8Array(Math.max(2 * view.length, 64 * 1024));
      bigger.set(view);
      bigger.set(value!, n);
      [view, n] = [bigger, n + value!.length];
      continue;
    }
    const offset = view.byteOffset, length = view.length;
    const { done, value } = await byob.read(view.subarray(n));
    // The read transferred the buffer (the old view is detached): view it where it now lives.
    view = new Uint8Array(value!.buffer, offset, length);
    if (done) return view.subarray(0, n);
    n += value!.length;
  }
}

async function readChunks(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  buf: Uint8Array,
): Promise<Uint8Array> {
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return buf.subarray(0, n);
    if (n + value.length > buf.length) {
      const bigger = new Uint8Array(Math.max(2 * buf.length, n + value.length));
      bigger.set(buf.subarray(0, n));
      buf = bigger;
    }
    buf.set(value, n);
    n += value.length;
  }
}
