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
import { configOrExit } from "./config.ts";
import { loadBackend } from "./inference/backend.ts";
import { loadModel } from "./inference/model.ts";
import { ModelSlot } from "./inference/slot.ts";
import { ServiceMetrics } from "./metrics.ts";
import { Reloader } from "./reload.ts";
import { sourceOf } from "./source_of.ts";
import { watchRegistry } from "./watch.ts";

async function main(): Promise<number> {
  const config = configOrExit(process.argv.slice(2), process.env, availableParallelism());
  if (typeof config === "number") return config;
  const { backend, note } = await loadBackend(config.backend, {
    threads: config.threads || availableParallelism(), // Node 20 has no navigator.hardwareConcurrency
  });
  console.log(`Backend: ${note}`);
  const metrics = new ServiceMetrics();
  const slot = new ModelSlot(null, "the first model is still loading");
  const reloader = new Reloader({
    slot,
    source: await sourceOf(config, process.env),
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
