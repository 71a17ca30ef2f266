/**
 * The publisher's commands on an S3 registry (`--registry s3://bucket/prefix`): the same
 * commands as on a directory (publish, activate, rollback, prune, list) carried out by
 * registry/registry_s3_write.ts, with the client configured from the standard AWS environment
 * variables. trainer/publish.ts dispatches here on the URL scheme and passes its onnxruntime
 * verification in, so a bundle is checked the same way whichever registry it goes to, and the
 * regression gate is the directory's (publish_gate.ts publishGated): it scores a local copy of
 * the candidate against a local copy of the active version's files, and evaluation.json is
 * uploaded with the new version.
 */
import {
  type Evaluation,
  EVALUATION_ROLE,
  type Graph,
  type GraphRuntime,
  type Manifest,
  readManifest,
  validateEvaluation,
} from "../bundle/mod.ts";
import { resolve } from "node:path";
import { s3ClientFromEnv, S3Registry } from "../registry/registry_s3.ts";
import {
  activateVersionS3,
  pruneS3,
  publishBundleS3,
  rollbackS3,
} from "../registry/registry_s3_write.ts";
import type { PublishOptions, PublishResult } from "../registry/registry_write.ts";
import { remoteFile, remoteManifest } from "../registry/s3_version.ts";
import { GATE_ACTIVE_ROLES, type GateOptions } from "./gate.ts";
import { forcedPast, listLine, publishGated } from "./publish_gate.ts";

export interface S3CommandOptions {
  name?: string;
  keep: number;
  verify: (dir: string, manifest: Manifest) => Promise<void>;
  /** The runtime the regression gate scores with (publish.ts onnxRuntimeNode). */
  runtime: () => Promise<GraphRuntime<Graph>>;
  /** Run the regression gate (publish and, for its --force, activate); undefined: no gate. */
  gate?: GateOptions;
  log: (line: string) => void;
  env: Record<string, string | undefined>;
}

export function s3Registry(url: string, env: Record<string, string | undefined>): S3Registry {
  return new S3Registry(url, s3ClientFromEnv(env));
}

/**
 * The gate's record of a stored version, or null (no version, no record, or an unreadable
 * one, as on a directory: publish_gate.ts evaluationOf).
 */
async function remoteEvaluation(
  reg: S3Registry,
  name: string,
  version: string,
): Promise<Evaluation | null> {
  const m = await remoteManifest(reg, name, version).catch(() => null);
  if (m === null) return null;
  const bytes = await remoteFile(reg, name, m, EVALUATION_ROLE).catch(() => null);
  try {
    return bytes && validateEvaluation(JSON.parse(new TextDecoder().decode(bytes)));
  } catch {
    return null;
  }
}

async function inactiveEvaluation(reg: S3Registry, name: string, version: string) {
  return (await reg.readCurrent(name)) === version
    ? null
    : await remoteEvaluation(reg, name, version);
}

/** Publishes a local bundle to an S3 registry with full verification and, with `gate`, the gate. */
export async function publishToS3(
  url: string,
  bundleDir: string,
  opts: Omit<S3CommandOptions, "log" | "runtime"> & {
    log?: (line: string) => void;
    runtime?: S3CommandOptions["runtime"];
  },
): Promise<PublishResult> {
  const reg = s3Registry(url, opts.env);
  const lock = lockFromEnv(opts.env);
  try {
    const manifest = await readManifest(resolve(bundleDir));
    const name = opts.name ?? manifest.name;
    const put = async (
      activate: boolean,
      augment?: PublishOptions["augment"],
    ) => {
      const { keep, verify, log } = opts;
      const r = await publishBundleS3(reg, bundleDir, {
        name,
        keep,
        verify,
        log,
        lock,
        activate,
        augment,
        activeRoles: [...GATE_ACTIVE_ROLES],
      });
      // An object store leaves no temporary directories behind to clean.
      return { ...r, cleaned: [] };
    };
    if (!opts.gate) return await put(true);
    if (!opts.runtime) throw new Error("publishToS3: the regression gate needs a runtime");
    return await publishGated(manifest, opts.gate, opts.runtime, {
      inactiveEvaluation: (version) => inactiveEvaluation(reg, name, version),
      publish: put,
      activate: async (version, forced) => {
        await activateVersionS3(reg, name, version, "publish", lock, forced);
      },
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

/** `publish <bundle-dir>` on S3: publishes and says what happened. */
async function publishCommand(url: string, bundleDir: string, opts: S3CommandOptions) {
  const t0 = performance.now();
  const r = await publishToS3(url, bundleDir, { ...opts, log: (l) => opts.log(`  ${l}`) });
  opts.log(
    `published ${r.name}@${r.version} to ${r.dir} (${r.copied ? "uploaded" : "already present"}, ` +
      `verified with onnxruntime-node and re-read from S3) in ${
        Math.round(performance.now() - t0)
      } ms; CURRENT was ${r.previous ?? "none"}` +
      (r.pruned.length ? `; pruned ${r.pruned.join(", ")}` : ""),
  );
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
    return await publishCommand(url, cmd === "publish" ? args[0] : cmd, opts);
  }
  const reg = s3Registry(url, opts.env);
  const lock = lockFromEnv(opts.env);
  try {
    const n = await reg.pickModel(opts.name);
    if (cmd === "activate") {
      const v = args[0];
      const forced = forcedPast(v, await inactiveEvaluation(reg, n, v), opts.gate?.force === true);
      const { previous } = await activateVersionS3(reg, n, v, "activate", lock, forced);
      log(`${n}: active version ${v} (was ${previous ?? "none"})`);
    } else if (cmd === "rollback") {
      const r = await rollbackS3(reg, n, lock);
      log(`${n}: rolled back from ${r.from ?? "none"} to ${r.to}`);
    } else if (cmd === "prune") {
      const removed = await pruneS3(reg, n, opts.keep, lock);
      log(`${n}: removed ${removed.length ? removed.join(", ") : "nothing"} (keep ${opts.keep})`);
    } else {
      const current = await reg.readCurrent(n);
      for (const v of await reg.versions(n)) {
        const e = v.hasManifest ? await remoteEvaluation(reg, n, v.version) : null;
        const line = listLine(v.version, v.version === current, e);
        console.log(line + (v.hasManifest ? "" : "  (incomplete: no manifest)"));
      }
    }
  } finally {
    reg.client.destroy();
  }
}
