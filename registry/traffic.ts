/**
 * The registry's traffic records, beside CURRENT: `<name>/CANARY` sends a share of requests to
 * a candidate version, `<name>/SHADOW` runs a candidate on a copy of live traffic. Each is one
 * JSON object written by rename (history.ts writeFileAtomic) under the registry lock, and every
 * change is also a HISTORY line with its reason, so replicas follow the records the way they
 * follow CURRENT (poll or file events) and an operator can read why a canary ended. A record
 * that is not "active" routes nothing; it stays to say how the last canary or shadow ended.
 * Pure node:fs/promises (publisher on Node, server on Deno).
 */
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { readManifest, verifyBundleFiles } from "../bundle/mod.ts";
import { appendHistory, writeFileAtomic } from "./history.ts";
import { exists, RegistryError } from "./registry.ts";
import { activateVersion, withRegistryLock } from "./registry_write.ts";

export const CANARY_FILE = "CANARY";
export const SHADOW_FILE = "SHADOW";
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export interface CanaryRecord {
  version: string;
  /** Share of requests routed to `version`, in (0, 100]. */
  percent: number;
  state: "active" | "promoted" | "aborted";
  /** ISO time of the last change. */
  time: string;
  /** Why the canary ended (abort reason), when it did. */
  reason?: string;
}

export interface ShadowRecord {
  version: string;
  state: "active" | "stopped";
  time: string;
}

export interface TrafficRecords {
  canary: CanaryRecord | null;
  shadow: ShadowRecord | null;
}

export class TrafficRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TrafficRecordError";
  }
}

/** Checks a percent given on the command line or read from a record. */
export function checkPercent(p: number, where: string): number {
  if (!(Number.isFinite(p) && p > 0 && p <= 100)) {
    throw new TrafficRecordError(`${where}: the canary percent must be in (0, 100], got ${p}`);
  }
  return p;
}

function field(o: Record<string, unknown>, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== "string") {
    throw new TrafficRecordError(`${where}: "${key}" must be a string, got ${JSON.stringify(v)}`);
  }
  return v;
}

function parseObject(text: string, where: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new TrafficRecordError(`${where} is not JSON: ${(e as Error).message}`);
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) {
    throw new TrafficRecordError(`${where} must hold one JSON object`);
  }
  const version = (o as Record<string, unknown>).version;
  if (typeof version !== "string" || !SAFE_ID.test(version)) {
    throw new TrafficRecordError(`${where}: "version" must be a version id, got ${version}`);
  }
  return o as Record<string, unknown>;
}

/** Parses a CANARY record; throws TrafficRecordError naming `where` and the bad field. */
export function parseCanary(text: string, where: string): CanaryRecord {
  const o = parseObject(text, where);
  const state = field(o, "state", where);
  if (state !== "active" && state !== "promoted" && state !== "aborted") {
    throw new TrafficRecordError(`${where}: "state" must be active, promoted or aborted`);
  }
  const r: CanaryRecord = {
    version: o.version as string,
    percent: checkPercent(Number(o.percent), where),
    state,
    time: field(o, "time", where),
  };
  if (typeof o.reason === "string") r.reason = o.reason;
  return r;
}

export function parseShadow(text: string, where: string): ShadowRecord {
  const o = parseObject(text, where);
  const state = field(o, "state", where);
  if (state !== "active" && state !== "stopped") {
    throw new TrafficRecordError(`${where}: "state" must be active or stopped`);
  }
  return { version: o.version as string, state, time: field(o, "time", where) };
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return null;
    throw e;
  }
}

/** The records of `<registry>/<name>/` (null where a file does not exist). */
export async function readTrafficRecords(modelDir: string): Promise<TrafficRecords> {
  const [c, s] = await Promise.all([
    readOptional(join(modelDir, CANARY_FILE)),
    readOptional(join(modelDir, SHADOW_FILE)),
  ]);
  return {
    canary: c === null ? null : parseCanary(c, join(modelDir, CANARY_FILE)),
    shadow: s === null ? null : parseShadow(s, join(modelDir, SHADOW_FILE)),
  };
}

function modelDirOf(registry: string, name: string): string {
  if (!SAFE_ID.test(name)) {
    throw new RegistryError("no-model", `Model name "${name}" is not a plain directory name`);
  }
  return join(resolve(registry), name);
}

/** A version that can be served: its directory, manifest and checksums are in order. */
async function checkVersion(modelDir: string, version: string, what: string): Promise<void> {
  if (!SAFE_ID.test(version)) {
    throw new RegistryError("no-version", `Version "${version}" is not a plain directory name`);
  }
  const dir = join(modelDir, version);
  if (!(await exists(join(dir, "manifest.json")))) {
    throw new RegistryError("no-version", `Cannot ${what} ${version}: ${dir} holds no bundle`);
  }
  await verifyBundleFiles(dir, await readManifest(dir));
}

async function currentOf(modelDir: string): Promise<string | null> {
  const text = await readOptional(join(modelDir, "CURRENT"));
  return text?.trim() || null;
}

async function writeCanary(modelDir: string, r: CanaryRecord): Promise<void> {
  await appendHistory(modelDir, {
    version: r.version,
    time: r.time,
    // A promotion's CURRENT change is already its own "promote" line (activateVersion).
    action: r.state === "aborted" ? "abort" : "canary",
    ...(r.reason ? { reason: r.reason } : { reason: `canary at ${r.percent}%` }),
  });
  await writeFileAtomic(join(modelDir, CANARY_FILE), JSON.stringify(r) + "\n");
}

/** Starts (or re-weights) a canary of `version` at `percent`; refuses the active version. */
export async function startCanary(
  registry: string,
  name: string,
  version: string,
  percent: number,
): Promise<{ previous: CanaryRecord | null }> {
  const modelDir = modelDirOf(registry, name);
  checkPercent(percent, `canary ${name}@${version}`);
  await checkVersion(modelDir, version, "start a canary of");
  return await withRegistryLock(modelDir, async () => {
    if ((await currentOf(modelDir)) === version) {
      throw new TrafficRecordError(
        `Cannot start a canary of ${name}@${version}: it is already the active version (CURRENT)`,
      );
    }
    const { canary } = await readTrafficRecords(modelDir);
    const time = new Date().toISOString();
    await writeCanary(modelDir, { version, percent, state: "active", time });
    return { previous: canary?.state === "active" ? canary : null };
  });
}

async function activeCanary(modelDir: string, what: string): Promise<CanaryRecord> {
  const { canary } = await readTrafficRecords(modelDir);
  if (!canary || canary.state !== "active") {
    throw new TrafficRecordError(
      `Cannot ${what}: no canary is running in ${modelDir} (${
        canary ? `the last one, ${canary.version}, was ${canary.state}` : "no CANARY record"
      })`,
    );
  }
  return canary;
}

/**
 * Ends the running canary by aborting it: the record says why, and every replica routes all
 * requests to CURRENT again. Returns the record written.
 */
export async function abortCanary(
  registry: string,
  name: string,
  reason: string,
): Promise<CanaryRecord> {
  const modelDir = modelDirOf(registry, name);
  return await withRegistryLock(modelDir, async () => {
    const c = await activeCanary(modelDir, `abort the canary of ${name}`);
    const r: CanaryRecord = { ...c, state: "aborted", time: new Date().toISOString(), reason };
    await writeCanary(modelDir, r);
    return r;
  });
}

/**
 * Ends the running canary by promoting it: CURRENT names the canary's version first (so
 * replicas serve it to everyone), then the record is marked promoted. `gate` (the publisher's
 * regression gate) may refuse the version by throwing, or return what HISTORY records as forced.
 */
export async function promoteCanary(
  registry: string,
  name: string,
  gate?: (version: string) => Promise<string[] | undefined>,
): Promise<CanaryRecord> {
  const modelDir = modelDirOf(registry, name);
  const c = await withRegistryLock(modelDir, () => activeCanary(modelDir, `promote ${name}`));
  const forced = await gate?.(c.version);
  const { previous } = await activateVersion(registry, name, c.version, "promote", forced);
  return await withRegistryLock(modelDir, async () => {
    const now = await activeCanary(modelDir, `promote ${name}@${c.version}`);
    const r: CanaryRecord = {
      ...now,
      state: "promoted",
      time: new Date().toISOString(),
      reason: `promoted to CURRENT (was ${previous ?? "none"})`,
    };
    await writeCanary(modelDir, r);
    return r;
  });
}

/** Starts shadowing `version` (null stops it); returns the record written. */
export async function setShadow(
  registry: string,
  name: string,
  version: string | null,
): Promise<ShadowRecord> {
  const modelDir = modelDirOf(registry, name);
  if (version !== null) await checkVersion(modelDir, version, "shadow");
  return await withRegistryLock(modelDir, async () => {
    const { shadow } = await readTrafficRecords(modelDir);
    if (version === null && shadow?.state !== "active") {
      throw new TrafficRecordError(`Cannot stop the shadow of ${name}: none is running`);
    }
    const r: ShadowRecord = {
      version: version ?? shadow!.version,
      state: version === null ? "stopped" : "active",
      time: new Date().toISOString(),
    };
    await appendHistory(modelDir, {
      version: r.version,
      time: r.time,
      action: "shadow",
      reason: r.state === "active" ? "shadow started" : "shadow stopped",
    });
    await writeFileAtomic(join(modelDir, SHADOW_FILE), JSON.stringify(r) + "\n");
    return r;
  });
}
