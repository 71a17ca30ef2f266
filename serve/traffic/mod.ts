/**
 * Canary and shadow traffic as the server binaries assemble it: a Traffic over the primary's
 * slot and registry source with the configured bounds, writing automatic aborts into the
 * registry when it is a writable directory, and keeping the canary's and shadow's cached files
 * when the primary's reloader trims a remote cache.
 */
import { abortCanary } from "../../registry/traffic.ts";
import type { ServeConfig } from "../config.ts";
import type { LoadedModel } from "../inference/model.ts";
import type { ModelSlot } from "../inference/slot.ts";
import type { ServiceMetrics } from "../metrics.ts";
import { DirSource, type RegistrySource } from "../registry_source.ts";
import { Traffic } from "./traffic.ts";

export { Traffic } from "./traffic.ts";
export { REQUEST_KEY_HEADER } from "./route.ts";

export function startTraffic(opts: {
  config: Pick<
    ServeConfig,
    "canaryMaxErrorRate" | "canaryMaxP99Ms" | "canaryMinRequests" | "shadowQueue"
  >;
  slot: ModelSlot;
  source: RegistrySource;
  load: (dir: string) => Promise<LoadedModel>;
  metrics?: ServiceMetrics;
  log?: (line: string) => void;
}): Traffic {
  const { config, source } = opts;
  const traffic = new Traffic({
    primary: opts.slot,
    source,
    load: opts.load,
    bounds: {
      maxErrorRate: config.canaryMaxErrorRate,
      maxP99Ms: config.canaryMaxP99Ms,
      minRequests: config.canaryMinRequests,
    },
    shadowQueue: config.shadowQueue,
    metrics: opts.metrics,
    log: opts.log,
    recordAbort: source instanceof DirSource
      ? async (name, reason) => void await abortCanary(source.root, name, reason)
      : undefined,
  });
  const retain = source.retain?.bind(source);
  if (retain) {
    source.retain = (name, keep) => retain(name, [...keep, ...traffic.versionsInUse()]);
  }
  return traffic;
}
