/**
 * An HTTP(S) registry followed without a file system: the versions HttpSource fetches and
 * sha256-checks are kept in memory, handed to the loader once (take()), and given back once
 * loaded (recycle()): the graphs live on only inside the onnxruntime sessions, and the next
 * version is downloaded into the same buffers (buffer_pool.ts) instead of new ones.
 * "localDir" is the version's URL: the reloader passes it back to the loader, and errors name it.
 */
import type { MemoryBundle, RoleChoice } from "../../bundle/mod.ts";
import { BufferPool } from "./buffer_pool.ts";
import {
  HttpSource,
  type RegistrySource,
  type SourceVersion,
  type VersionRef,
} from "../registry_source.ts";

export class MemorySource implements RegistrySource {
  readonly kind = "http";
  readonly http: HttpSource;
  #fetched = new Map<string, MemoryBundle>();
  readonly pool = new BufferPool();

  /** `roles`: which files of a version to download (servedBy the loader's precision). */
  constructor(base: string, model: string, fetchFn: typeof fetch = fetch, roles?: RoleChoice) {
    // No cache directory: fetchBundle() never touches one, and nothing here calls localDir().
    this.http = Object.assign(new HttpSource(base, model, "", fetchFn), { roles });
  }
  get description(): string {
    return `HTTP registry ${this.http.base} (in memory, no cache)`;
  }
  current(): Promise<VersionRef> {
    return this.http.current();
  }
  async localDir(ref: VersionRef): Promise<string> {
    const bundle = await this.http.fetchBundle(ref, (n) => this.pool.take(n));
    this.#fetched.set(bundle.label, bundle);
    return bundle.label;
  }
  /** The bundle localDir() fetched as `label`, once: the source keeps no reference to it. */
  take(label: string): MemoryBundle {
    const b = this.#fetched.get(label);
    if (!b) throw new Error(`No downloaded bundle ${label} is waiting to be loaded`);
    this.#fetched.delete(label);
    return b;
  }
  /**
   * Gives a taken bundle's buffers back for the next download. Call it once the load has
   * finished, passed or failed: the sessions hold copies, nothing reads the bytes after that.
   */
  recycle(bundle: MemoryBundle): void {
    this.pool.give(bundle.files.values());
  }
  fingerprint(): Promise<string> {
    return Promise.resolve(""); // remote versions are immutable, as for HttpSource
  }
  async versions(): Promise<SourceVersion[]> {
    const active = await this.current().then((r) => r.version, () => null);
    return active ? [{ version: active, active: true, hasManifest: true }] : [];
  }
}
