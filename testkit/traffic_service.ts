/**
 * The service with canary and shadow traffic for tests and benches, assembled as serve/main.ts
 * assembles it (reloader + Traffic over a registry directory + app), in-process (app.request)
 * or on 127.0.0.1; a twin of the tiny bundle (same weights, another version id) for shadow
 * agreement checks; and a keyed one-image classify call.
 */
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createApp } from "../serve/app.ts";
import { defaultConfig, type ServeConfig } from "../serve/config.ts";
import { type BackendName, loadModel, ModelSlot } from "../serve/inference/mod.ts";
import { ServiceMetrics } from "../serve/metrics.ts";
import { DirSource } from "../serve/registry_source.ts";
import { Reloader } from "../serve/reload.ts";
import { startTraffic, type Traffic } from "../serve/traffic/mod.ts";
import { FIXTURES, MODEL } from "./fixtures.ts";
import { backendFor } from "./swap_service.ts";

/** The version id of TINY_BUNDLE's twin (addTwin). */
export const TWIN = "twin-of-tiny";

/** Copies the tiny bundle into `root` as version TWIN: identical graphs, another version. */
export async function addTwin(root: string): Promise<string> {
  const dir = join(root, MODEL, TWIN);
  await cp(FIXTURES[0], dir, { recursive: true });
  const m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
  await writeFile(join(dir, "manifest.json"), JSON.stringify({ ...m, version: TWIN }));
  return dir;
}

export interface TrafficService {
  app: ReturnType<typeof createApp>;
  traffic: Traffic;
  reloader: Reloader;
  slot: ModelSlot;
  metrics: ServiceMetrics;
  logs: string[];
  /** Follows CURRENT, CANARY and SHADOW now (what a poll does). */
  follow(): Promise<void>;
  close(): Promise<void>;
}

export async function startTrafficService(opts: {
  registry: string;
  backend: BackendName;
  config?: Partial<ServeConfig>;
}): Promise<TrafficService> {
  const backend = await backendFor(opts.backend);
  const config = defaultConfig({ registry: opts.registry, threads: 1, ...opts.config });
  const metrics = new ServiceMetrics();
  const slot = new ModelSlot(null, "loading");
  const logs: string[] = [];
  const log = (l: string) => logs.push(l);
  const source = new DirSource(opts.registry, MODEL);
  const load = (dir: string) => loadModel(dir, { backend, maxBatch: config.maxBatch });
  const reloader = new Reloader({ slot, source, metrics, log, load });
  const traffic = startTraffic({ config, slot, source, load, metrics, log });
  const follow = async () => {
    await reloader.request({ kind: "follow", reason: "test" });
    await traffic.refresh("test");
  };
  await follow();
  if (!slot.current) throw new Error(`test service cannot start: ${logs.join("\n")}`);
  const app = createApp({ slot, config, metrics, reloader, traffic, log: () => {} });
  return {
    app,
    traffic,
    reloader,
    slot,
    metrics,
    logs,
    follow,
    async close() {
      await reloader.idle();
      await traffic.close();
      await slot.close();
    },
  };
}

/** POSTs one raw 28x28 image to /v1/classify with X-Request-Key `key` (none when null). */
export async function classifyKeyed(
  fetchFn: (path: string, init: RequestInit) => Response | Promise<Response>,
  image: Uint8Array,
  key: string | null,
): Promise<{ status: number; version: string | null; bodyVersion: string | null }> {
  const res = await fetchFn("/v1/classify", {
    method: "POST",
    headers: {
      "Content-Type": "application/octet-stream",
      ...(key === null ? {} : { "X-Request-Key": key }),
    },
    body: image as Uint8Array<ArrayBuffer>,
  });
  const version = res.headers.get("x-model-version");
  if (res.status !== 200) {
    await res.body?.cancel();
    return { status: res.status, version, bodyVersion: null };
  }
  const body = await res.json();
  return { status: 200, version, bodyVersion: body.model.version };
}
