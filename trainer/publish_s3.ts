/**
 * The publisher's commands on an S3 registry (`--registry s3://bucket/prefix`): the same
 * commands as on a directory (publish, activate, rollback, prune, list) carried out by
 * registry/registry_s3_write.ts, with the client configured from the standard AWS environment
 * variables. trainer/publish.ts dispatches here on the URL scheme and passes its onnxruntime
 * verification in, so a bundle is checked the same way whichever registry it goes to.
 */
import type { Manifest } from "../bundle/mod.ts";
import { s3ClientFromEnv, S3Registry } from "../registry/registry_s3.ts";
import {
  activateVersionS3,
  pruneS3,
  publishBundleS3,
  rollbackS3,
  type S3PublishResult,
} from "../registry/registry_s3_write.ts";

export interface S3CommandOptions {
  name?: string;
  keep: number;
  verify: (dir: string, manifest: Manifest) => Promise<void>;
  log: (line: string) => void;
  env: Record<string, string | undefined>;
}

export function s3Registry(url: string, env: Record<string, string | undefined>): S3Registry {
  return new S3Registry(url, s3ClientFromEnv(env));
}

/** Publishes a local bundle to an S3 registry with full verification. */
export async function publishToS3(
  url: string,
  bundleDir: string,
  opts: Omit<S3CommandOptions, "log"> & { log?: (line: string) => void },
): Promise<S3PublishResult> {
  const reg = s3Registry(url, opts.env);
  try {
    return await publishBundleS3(reg, bundleDir, {
      name: opts.name,
      keep: opts.keep,
      verify: opts.verify,
      log: opts.log,
      lock: lockFromEnv(opts.env),
    });
  } finally {
    reg.client.destroy();
  }
}

/** The lease can be shortened for tests and small setups (REGISTRY_LOCK_LEASE_MS). */
function lockFromEnv(env: Record<string, string | undefined>) {
  const lease = Number(env.REGISTRY_LOCK_LEASE_MS);
  return Number.isFinite(lease) && lease > 0 ? { leaseMs: lease } : undefined;
}

/** Runs one publisher command (already parsed by publishMain) against an S3 registry. */
export async function s3Command(
  url: string,
  cmd: string,
  args: string[],
  opts: S3CommandOptions,
): Promise<void> {
  const { log } = opts;
  if (cmd !== "activate" && cmd !== "rollback" && cmd !== "prune" && cmd !== "list") {
    const t0 = performance.now();
    const r = await publishToS3(url, cmd === "publish" ? args[0] : cmd, {
      ...opts,
      log: (l) => log(`  ${l}`),
    });
    log(
      `published ${r.name}@${r.version} to ${r.dir} (${
        r.copied ? "uploaded" : "already present"
      }, ` +
        `verified with onnxruntime-node and re-read from S3) in ${
          Math.round(performance.now() - t0)
        } ms; CURRENT was ${r.previous ?? "none"}` +
        (r.pruned.length ? `; pruned ${r.pruned.join(", ")}` : ""),
    );
    return;
  }
  const reg = s3Registry(url, opts.env);
  const lock = lockFromEnv(opts.env);
  try {
    const n = await reg.pickModel(opts.name);
    if (cmd === "activate") {
      const { previous } = await activateVersionS3(reg, n, args[0], "activate", lock);
      log(`${n}: active version ${args[0]} (was ${previous ?? "none"})`);
    } else if (cmd === "rollback") {
      const r = await rollbackS3(reg, n, lock);
      log(`${n}: rolled back from ${r.from ?? "none"} to ${r.to}`);
    } else if (cmd === "prune") {
      const removed = await pruneS3(reg, n, opts.keep, lock);
      log(`${n}: removed ${removed.length ? removed.join(", ") : "nothing"} (keep ${opts.keep})`);
    } else {
      const current = await reg.readCurrent(n);
      for (const v of await reg.versions(n)) {
        const mark = v.version === current ? "*" : " ";
        console.log(`${mark} ${v.version}${v.hasManifest ? "" : "  (incomplete: no manifest)"}`);
      }
    }
  } finally {
    reg.client.destroy();
  }
}
