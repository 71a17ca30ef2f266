/**
 * The registry source a server configuration asks for: --bundle, an S3 or HTTP(S) registry, or
 * a registry directory. One definition for every entry point (serve/main.ts on Deno,
 * serve/node.ts on Node), so they follow the same registries the same way.
 */
import { servedBy } from "../bundle/mod.ts";
import { isS3Registry } from "../registry/s3_location.ts";
import type { ServeConfig } from "./config.ts";
import {
  BundleSource,
  DirSource,
  HttpSource,
  isHttpRegistry,
  type RegistrySource,
} from "./registry_source.ts";

/** `env` supplies the AWS variables of an S3 registry. */
export async function sourceOf(
  config: ServeConfig,
  env: Record<string, string | undefined>,
): Promise<RegistrySource> {
  if (config.bundle !== undefined) return new BundleSource(config.bundle);
  // A remote source downloads only the files this server's loader reads (bundle/served.ts).
  const roles = servedBy(config.precision);
  if (isS3Registry(config.registry)) {
    // Loaded only here: the AWS SDK takes a second or more to import.
    const { S3Registry, s3ClientFromEnv } = await import("../registry/registry_s3.ts");
    const { S3Source } = await import("./registry_source_s3.ts");
    const registry = new S3Registry(config.registry, s3ClientFromEnv(env));
    return Object.assign(new S3Source(registry, config.model, config.cacheDir), { roles });
  }
  if (isHttpRegistry(config.registry)) {
    return Object.assign(new HttpSource(config.registry, config.model!, config.cacheDir), {
      roles,
    });
  }
  return new DirSource(config.registry, config.model);
}
