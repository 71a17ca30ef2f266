/**
 * The same service on Node.js (`deno task serve:node -- [flags]`, i.e. `node --import tsx
 * serve/node.ts`): the server's flags (serve/config.ts), onnxruntime-node in-process, the app
 * from createApp() served by @hono/node-server. It loads the bundle or the registry's CURRENT
 * through the Reloader like serve/main.ts and follows the registry by polling (--poll-ms; file
 * events are Deno's). What main.ts adds for Deno (replicas, worker pools) stays there.
 */
import { serve } from "@hono/node-server";
import { availableParallelism } from "node:os";
import process from "node:process";
import { createApp } from "./app.ts";
import { ConfigError, helpText, parseConfig, type ServeConfig } from "./config.ts";
import { loadBackend } from "./inference/backend.ts";
import { loadModel } from "./inference/model.ts";
import { ModelSlot } from "./inference/slot.ts";
import { ServiceMetrics } from "./metrics.ts";
import {
  BundleSource,
  DirSource,
  HttpSource,
  isHttpRegistry,
  type RegistrySource,
} from "./registry_source.ts";
import { Reloader } from "./reload.ts";
import { watchRegistry } from "./watch.ts";

function sourceOf(config: ServeConfig): RegistrySource {
  if (config.bundle !== undefined) return new BundleSource(config.bundle);
  if (isHttpRegistry(config.registry)) {
    return new HttpSource(config.registry, config.model!, config.cacheDir);
  }
  return new DirSource(config.registry, config.model);
}

async function main(): Promise<number> {
  let config: ServeConfig | null;
  try {
    config = parseConfig(process.argv.slice(2), process.env, availableParallelism()).config;
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`${e.message}\n\n${helpText()}`);
      return 2;
    }
    throw e;
  }
  if (!config) {
    console.log(helpText());
    return 0;
  }
  const { backend, note } = await loadBackend(config.backend, {
    threads: config.threads || availableParallelism(), // Node 20 has no navigator.hardwareConcurrency
  });
  console.log(`Backend: ${note}`);
  const metrics = new ServiceMetrics();
  const slot = new ModelSlot(null, "the first model is still loading");
  const reloader = new Reloader({
    slot,
    source: sourceOf(config),
    metrics,
    load: (dir) =>
      loadModel(dir, {
        backend,
        maxBatch: config.maxBatch,
        maxQueueDelayMs: config.maxQueueDelayMs,
      }),
  });
  const first = await reloader.request({ kind: "follow", reason: "startup" });
  if (first.status === "failed") console.error(`No model is being served: ${first.error}`);
  const watcher = config.bundle === undefined
    ? watchRegistry(undefined, (why) => void reloader.request({ kind: "follow", reason: why }), {
      pollMs: config.pollMs,
    })
    : null;
  const app = createApp({ slot, config, metrics, reloader, adminToken: config.adminToken });
  const server = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, (info) => {
    const host = info.address === "0.0.0.0" ? "localhost" : info.address;
    console.log(
      `Listening on http://${host}:${info.port}/ (Node.js ${process.version}, @hono/node-server)`,
    );
  });
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      process.once(sig, () => {
        watcher?.close();
        server.close(() => resolve());
      });
    }
  });
  await reloader.idle();
  await slot.close();
  return 0;
}

process.exitCode = await main();
