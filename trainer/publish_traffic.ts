/**
 * The publisher's traffic commands (dispatched from trainer/publish.ts):
 *   canary <version|bundle-dir> --percent P   send P% of client keys to a version (a bundle
 *                                             directory is published first without activating)
 *   promote                                   make the canary's version CURRENT, end the canary
 *   abort [--reason text]                     end the canary; every replica routes to CURRENT
 *   shadow <version|off>                      run a version on a copy of live traffic, or stop
 * The records live beside CURRENT (registry/traffic.ts) and every replica follows them. A
 * server stops routing to a canary past its bounds by itself; with a read-only registry (HTTP,
 * S3) `abort --reason` is how that stop reaches the registry. `promote` runs the regression
 * gate of a publish (publish_gate.ts) on the canary's version against the active one first:
 * it may have been staged without the gate, or CURRENT may have changed since; --force
 * promotes past it (recorded in HISTORY). Directory registries only.
 */
import { stat } from "node:fs/promises";
import type { Graph, GraphRuntime } from "../bundle/mod.ts";
import { FlagError, type FlagSpecs } from "../common/flags.ts";
import { resolveModelName } from "../registry/registry.ts";
import { publishBundle } from "../registry/registry_write.ts";
import {
  abortCanary,
  checkPercent,
  promoteCanary,
  setShadow,
  startCanary,
} from "../registry/traffic.ts";
import { isS3Registry } from "../registry/s3_location.ts";
import { gateOptionsFrom, promotionGate } from "./publish_gate.ts";

export const TRAFFIC_COMMANDS = new Set(["canary", "promote", "abort", "shadow"]);

export const TRAFFIC_FLAGS = {
  percent: { type: "number", help: "canary: share of client keys sent to the canary, (0, 100]" },
  reason: { type: "string", help: "abort: why (recorded in CANARY and HISTORY)" },
} satisfies FlagSpecs;

export const TRAFFIC_USAGE =
  `       deno task publish -- canary <version|bundle-dir> --percent P | promote [--force] | abort [--reason text]
       deno task publish -- shadow <version|off>`;

export interface TrafficCommandOptions {
  registry: string;
  name?: string;
  flags: Record<string, unknown>;
  /** Loads a bundle in onnxruntime (publish.ts verifyWithOnnxRuntime) before it is staged. */
  verify: Parameters<typeof publishBundle>[1]["verify"];
  /** The runtime `promote`'s regression gate scores with (publish.ts onnxRuntimeNode). */
  runtime: () => Promise<GraphRuntime<Graph>>;
  log: (s: string) => void;
}

async function isDir(p: string): Promise<boolean> {
  return await stat(p).then((s) => s.isDirectory(), () => false);
}

/** A version id, or a bundle directory copied in and verified but not activated. */
async function stage(arg: string, o: TrafficCommandOptions, name?: string): Promise<string> {
  if (!(await isDir(arg))) return arg;
  const r = await publishBundle(arg, {
    registry: o.registry,
    name,
    verify: o.verify,
    activate: false,
    keep: 0,
  });
  o.log(`staged ${r.name}@${r.version} in ${r.dir} (verified, not active)`);
  return r.version;
}

/** Runs one traffic command; throws FlagError for bad usage. */
export async function trafficCommand(
  cmd: string,
  rest: string[],
  o: TrafficCommandOptions,
): Promise<void> {
  if (isS3Registry(o.registry) || /^https?:\/\//i.test(o.registry)) {
    throw new FlagError(
      `"${cmd}" writes the registry's CANARY/SHADOW records and needs a registry directory, got ${o.registry}`,
    );
  }
  const want = cmd === "canary" || cmd === "shadow" ? 1 : 0;
  if (rest.length !== want) {
    throw new FlagError(`"${cmd}" takes ${want} argument(s), got ${rest.length}\n${TRAFFIC_USAGE}`);
  }
  const name = await resolveModelName(o.registry, o.name);
  if (cmd === "canary") {
    if (o.flags.percent === undefined) throw new FlagError(`"canary" needs --percent P`);
    const percent = checkPercent(o.flags.percent as number, "--percent");
    const version = await stage(rest[0], o, name);
    const r = await startCanary(o.registry, name, version, percent);
    o.log(
      `${name}: canary ${version} at ${percent}%` +
        (r.previous ? ` (replaces ${r.previous.version} at ${r.previous.percent}%)` : ""),
    );
  } else if (cmd === "promote") {
    const gate = promotionGate(o.registry, name, gateOptionsFrom(o.flags, o.log), o.runtime);
    const r = await promoteCanary(o.registry, name, gate);
    o.log(`${name}: promoted ${r.version}: ${r.reason}`);
  } else if (cmd === "abort") {
    const reason = (o.flags.reason as string | undefined) ?? "aborted by the operator";
    const r = await abortCanary(o.registry, name, reason);
    o.log(`${name}: aborted the canary of ${r.version} (${reason})`);
  } else {
    const off = rest[0] === "off";
    const r = await setShadow(o.registry, name, off ? null : await stage(rest[0], o, name));
    o.log(`${name}: shadow ${r.version} ${r.state}`);
  }
}
