/**
 * The service's view of an S3 registry (`--registry s3://bucket/prefix`, layout in
 * registry/registry_s3.ts): it polls CURRENT, downloads the version it names into the local
 * cache with every object checked against the manifest's size and sha256 (bundle_cache.ts),
 * and can point CURRENT at another version for the admin API (under the publishers' lock).
 * Credentials and endpoint come from the standard AWS environment variables. Replicas on any
 * number of machines following one bucket converge on its CURRENT within one poll interval.
 */
import type { RoleChoice } from "../bundle/mod.ts";
import type { S3Registry } from "../registry/registry_s3.ts";
import { activateVersionS3 } from "../registry/registry_s3_write.ts";
import { RegistryError } from "../registry/registry.ts";
import { cacheVersion, retainCached } from "./bundle_cache.ts";
import {
  readRemoteTraffic,
  type RegistrySource,
  type SourceVersion,
  type VersionRef,
} from "./registry_source.ts";
import type { TrafficRecords } from "../registry/traffic.ts";
import { resolve } from "node:path";

export class S3Source implements RegistrySource {
  readonly kind = "s3";
  readonly cacheDir: string;
  #downloads = new Map<string, Promise<string>>();
  #model: string | undefined;

  /** Which files of a version to download (bundle/served.ts servedBy); all when unset. */
  roles?: RoleChoice;

  constructor(readonly registry: S3Registry, model: string | undefined, cacheDir: string) {
    this.#model = model;
    this.cacheDir = resolve(cacheDir);
  }

  get description(): string {
    return `S3 registry ${this.registry.url} (cache ${this.cacheDir})`;
  }

  async current(): Promise<VersionRef> {
    // Without --model the bucket must hold exactly one model; found once, then fixed.
    const name = this.#model ??= await this.registry.pickModel(undefined);
    const version = await this.registry.readCurrent(name);
    if (version === null) {
      throw new RegistryError(
        "no-current",
        `Cannot find the active version of model "${name}": ${
          this.registry.where(`${name}/CURRENT`)
        } does not exist`,
      );
    }
    return { name, version };
  }

  localDir(ref: VersionRef): Promise<string> {
    const key = `${ref.name}/${ref.version}`;
    let p = this.#downloads.get(key);
    if (!p) {
      const remote = {
        read: async (rel: string) => {
          const o = await this.registry.get(rel);
          if (o === null) {
            throw new RegistryError("no-version", `${this.registry.where(rel)} does not exist`);
          }
          return o.bytes;
        },
        where: (rel: string) => this.registry.where(rel),
      };
      p = cacheVersion(this.cacheDir, ref, remote, this.roles).finally(() =>
        this.#downloads.delete(key)
      );
      this.#downloads.set(key, p);
    }
    return p;
  }

  /** The version's keys, sizes and ETags: a repaired object makes a rejected version retried. */
  async fingerprint(ref: VersionRef): Promise<string> {
    const objects = await this.registry.list(`${ref.name}/${ref.version}/`);
    return objects.map((o) => `${o.rel}:${o.size}:${o.etag}`).sort().join("|");
  }

  async versions(name: string): Promise<SourceVersion[]> {
    const active = await this.registry.readCurrent(name).catch(() => null);
    return (await this.registry.versions(name)).map(({ version, hasManifest }) => ({
      version,
      active: version === active,
      hasManifest,
    }));
  }

  async activate(ref: VersionRef): Promise<void> {
    await activateVersionS3(this.registry, ref.name, ref.version);
  }

  async retain(name: string, keep: string[]): Promise<void> {
    await retainCached(this.cacheDir, name, keep);
  }

  traffic(name: string): Promise<TrafficRecords> {
    const read = async (rel: string) => {
      const o = await this.registry.get(rel);
      return o === null ? null : new TextDecoder().decode(o.bytes);
    };
    return readRemoteTraffic(name, read, (rel) => this.registry.where(rel));
  }
}
