/**
 * Where the service gets its model versions from, behind one small interface the reloader
 * uses: which version is active (CURRENT), a local directory holding that version's verified
 * files, the known versions, and (for a writable registry) making a version active. Three
 * sources: a registry directory (local or a shared mount; registry/registry.ts layout), a
 * read-only HTTP(S) registry with the same layout (CURRENT, manifest.json and the files it
 * lists are fetched, checked against the manifest's sha256 and kept in a local cache, so
 * replicas on several machines can follow one publisher), and a fixed bundle directory
 * (--bundle; nothing to follow). The S3 source lives beside it (registry_source_s3.ts).
 */
import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  MANIFEST_FILE,
  type MemoryBundle,
  readManifest,
  type RoleChoice,
  VERSION_ID as SAFE_ID,
} from "../bundle/mod.ts";
import { CURRENT_FILE, listVersions, RegistryError, resolveActive } from "../registry/registry.ts";
import { activateVersion } from "../registry/registry_write.ts";
import {
  CANARY_FILE,
  parseCanary,
  parseShadow,
  readTrafficRecords,
  SHADOW_FILE,
  type TrafficRecords,
} from "../registry/traffic.ts";
import {
  cachedVersions,
  cacheVersion,
  fetchVerified,
  readBodyInto,
  RemoteBundleError,
  type RemoteReader,
  retainCached,
} from "./bundle_cache.ts";

export interface VersionRef {
  name: string;
  version: string;
}

export interface SourceVersion {
  version: string;
  active: boolean;
  hasManifest: boolean;
}

export interface RegistrySource {
  readonly kind: "dir" | "http" | "s3" | "bundle";
  /** For logs: where versions come from. */
  readonly description: string;
  /** A local directory to watch for changes, when there is one. */
  readonly watchDir?: string;
  /** The version CURRENT names now. Cheap: called on every change event and poll. */
  current(): Promise<VersionRef>;
  /** A local directory holding `version`'s files (downloaded and sha256-checked for http). */
  localDir(ref: VersionRef): Promise<string>;
  /** Changes whenever the files of a version change (so a failed version is retried then). */
  fingerprint(ref: VersionRef): Promise<string>;
  versions(name: string): Promise<SourceVersion[]>;
  /** Points CURRENT at `version`; absent for read-only sources. */
  activate?(ref: VersionRef): Promise<void>;
  /** Drops cached copies other than `keep` (remote registries' caches only). */
  retain?(name: string, keep: string[]): Promise<void>;
  /** The CANARY and SHADOW records (registry/traffic.ts); absent for a fixed bundle. */
  traffic?(name: string): Promise<TrafficRecords>;
}

/** A registry directory: `<root>/<name>/<version>/` + `<name>/CURRENT`. */
export class DirSource implements RegistrySource {
  readonly kind = "dir";
  readonly root: string;
  readonly watchDir: string;
  constructor(root: string, readonly model?: string) {
    this.root = resolve(root);
    this.watchDir = this.root;
  }
  get description(): string {
    return `registry ${this.root}`;
  }
  async current(): Promise<VersionRef> {
    const a = await resolveActive(this.root, this.model);
    return { name: a.name, version: a.version };
  }
  localDir(ref: VersionRef): Promise<string> {
    return Promise.resolve(join(this.root, ref.name, ref.version));
  }
  async fingerprint(ref: VersionRef): Promise<string> {
    const dir = join(this.root, ref.name, ref.version);
    try {
      const names = (await readdir(dir)).sort();
      const parts = await Promise.all(
        names.map(async (n) => {
          const s = await stat(join(dir, n));
          return `${n}:${s.size}:${s.mtimeMs}`;
        }),
      );
      return parts.join("|");
    } catch {
      return "missing";
    }
  }
  async versions(name: string): Promise<SourceVersion[]> {
    return (await listVersions(this.root, name)).map(({ version, active, hasManifest }) => ({
      version,
      active,
      hasManifest,
    }));
  }
  async activate(ref: VersionRef): Promise<void> {
    await activateVersion(this.root, ref.name, ref.version);
  }
  traffic(name: string): Promise<TrafficRecords> {
    return readTrafficRecords(join(this.root, name));
  }
}

/** The traffic records from `read` (null for an object that does not exist), parsed. */
export async function readRemoteTraffic(
  name: string,
  read: (rel: string) => Promise<string | null>,
  where: (rel: string) => string,
): Promise<TrafficRecords> {
  const [c, s] = await Promise.all([
    read(`${name}/${CANARY_FILE}`),
    read(`${name}/${SHADOW_FILE}`),
  ]);
  return {
    canary: c === null ? null : parseCanary(c, where(`${name}/${CANARY_FILE}`)),
    shadow: s === null ? null : parseShadow(s, where(`${name}/${SHADOW_FILE}`)),
  };
}

/** One bundle directory served as is (--bundle). */
export class BundleSource implements RegistrySource {
  readonly kind = "bundle";
  readonly dir: string;
  constructor(dir: string) {
    this.dir = resolve(dir);
  }
  get description(): string {
    return `--bundle ${this.dir}`;
  }
  async current(): Promise<VersionRef> {
    const m = await readManifest(this.dir);
    return { name: m.name, version: m.version };
  }
  localDir(): Promise<string> {
    return Promise.resolve(this.dir);
  }
  async fingerprint(): Promise<string> {
    return await stat(join(this.dir, MANIFEST_FILE)).then(
      (s) => `${s.size}:${s.mtimeMs}`,
      () => "",
    );
  }
  async versions(): Promise<SourceVersion[]> {
    const m = await readManifest(this.dir).catch(() => null);
    return m ? [{ version: m.version, active: true, hasManifest: true }] : [];
  }
}

export class HttpSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HttpSourceError";
  }
}

function asHttpError(e: unknown): never {
  throw e instanceof RemoteBundleError ? new HttpSourceError(e.message) : e;
}

/**
 * A read-only registry over HTTP(S): `<base>/<name>/CURRENT`, `<base>/<name>/<version>/manifest.json`
 * and the files it lists. Downloads go to `<cache>/<name>/.<version>.*.tmp` and are renamed to
 * `<cache>/<name>/<version>/` only after every file matched its size and sha256.
 */
export class HttpSource implements RegistrySource {
  readonly kind = "http";
  readonly base: string;
  readonly cacheDir: string;
  #downloads = new Map<string, Promise<string>>();

  /** Which files of a version to download (bundle/served.ts servedBy); all when unset. */
  roles?: RoleChoice;

  constructor(
    base: string,
    readonly model: string,
    cacheDir: string,
    readonly fetchFn: typeof fetch = fetch,
    readonly timeoutMs = 30_000,
  ) {
    this.base = base.endsWith("/") ? base : base + "/";
    this.cacheDir = resolve(cacheDir);
    if (!SAFE_ID.test(model)) {
      throw new HttpSourceError(`Model name "${model}" is not a plain name`);
    }
  }
  get description(): string {
    return `HTTP registry ${this.base} (cache ${this.cacheDir})`;
  }

  async #get(path: string): Promise<Response> {
    const url = new URL(path, this.base).href;
    let res: Response;
    try {
      res = await this.fetchFn(url, {
        cache: "no-store",
        signal: AbortSignal.timeout(this.timeoutMs),
      } as RequestInit);
    } catch (e) {
      throw new HttpSourceError(`Cannot fetch ${url}: ${(e as Error).message}`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new HttpSourceError(`Cannot fetch ${url}: HTTP ${res.status} ${res.statusText}`);
    }
    return res;
  }

  async current(): Promise<VersionRef> {
    const text = await (await this.#get(`${this.model}/${CURRENT_FILE}`)).text();
    const version = text.trim();
    if (!SAFE_ID.test(version)) {
      throw new RegistryError(
        "bad-current",
        `${this.base}${this.model}/${CURRENT_FILE} must hold one version id, got ${
          JSON.stringify(text.slice(0, 80))
        }`,
      );
    }
    return { name: this.model, version };
  }

  /** `alloc`: where files of a known size are read into (fetchBundle's caller's buffers). */
  #remote(alloc?: (bytes: number) => Uint8Array): RemoteReader {
    return {
      read: async (rel: string, expect?: number) => {
        const res = await this.#get(rel);
        return alloc && expect !== undefined
          ? await readBodyInto(res, expect, alloc)
          : new Uint8Array(await res.arrayBuffer());
      },
      where: (rel: string) => this.base + rel,
    };
  }

  localDir(ref: VersionRef): Promise<string> {
    // Concurrent callers for one version share a download.
    const key = `${ref.name}/${ref.version}`;
    let p = this.#downloads.get(key);
    if (!p) {
      p = cacheVersion(this.cacheDir, ref, this.#remote(), this.roles).catch(asHttpError)
        .finally(() => this.#downloads.delete(key));
      this.#downloads.set(key, p);
    }
    return p;
  }

  /**
   * Downloads `ref`'s manifest and files into memory, each checked against the manifest's size
   * and sha256 (the edge profile loads from here without a cache directory); `alloc` gives the
   * buffers the files are read into (the edge reuses them from version to version).
   */
  fetchBundle(
    ref: VersionRef,
    alloc?: (bytes: number) => Uint8Array,
  ): Promise<MemoryBundle & { manifestBytes: Uint8Array }> {
    return fetchVerified(ref, this.#remote(alloc), this.roles).catch(asHttpError);
  }

  fingerprint(): Promise<string> {
    return Promise.resolve(""); // remote files are immutable; a failed version is retried on force
  }

  async versions(name: string): Promise<SourceVersion[]> {
    let active: string | null = null;
    try {
      active = (await this.current()).version;
    } catch {
      active = null;
    }
    const cached = await cachedVersions(this.cacheDir, name);
    if (active && !cached.includes(active)) cached.push(active);
    return cached.sort().map((version) => ({
      version,
      active: version === active,
      hasManifest: true,
    }));
  }

  retain(name: string, keep: string[]): Promise<void> {
    return retainCached(this.cacheDir, name, keep);
  }

  traffic(name: string): Promise<TrafficRecords> {
    const read = async (rel: string) => {
      const url = new URL(rel, this.base).href;
      const res = await this.fetchFn(url, {
        cache: "no-store",
        signal: AbortSignal.timeout(this.timeoutMs),
      } as RequestInit);
      if (res.status === 404) {
        await res.body?.cancel();
        return null;
      }
      if (!res.ok) {
        await res.body?.cancel();
        throw new HttpSourceError(`Cannot fetch ${url}: HTTP ${res.status} ${res.statusText}`);
      }
      return await res.text();
    };
    return readRemoteTraffic(name, read, (rel) => this.base + rel);
  }
}

/** True for an http:// or https:// registry location. */
export function isHttpRegistry(registry: string): boolean {
  return /^https?:\/\//i.test(registry);
}
