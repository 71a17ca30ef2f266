/**
 * The same service on Node.js (`deno task serve:node -- [flags]`, i.e. `node --import tsx
 * serve/node.ts`): the service of serve/service.ts (flags, backend, registry source, hot swaps,
 * canary and shadow traffic, app) served by @hono/node-server. What differs from serve/main.ts:
 * the registry is followed by polling only (--poll-ms; file events are Deno's), images decode
 * inline (the decode pool's Workers are Deno's), and there are no replicas. SIGINT and SIGTERM
 * drain the requests in flight before the connections close, as on Deno.
 */
import { serve } from "@hono/node-server";
import type { Server } from "node:http";
import { availableParallelism } from "node:os";
import process from "node:process";
import { buildService, type Closing, listeningLine, type Service } from "./service.ts";

/** @hono/node-server on the configured address, and how to close it. */
function listen(service: Service): Closing {
  const { config } = service;
  const note = `; Node.js ${process.version}, @hono/node-server`;
  const server = serve(
    { fetch: service.app.fetch, port: config.port, hostname: config.host },
    (info) => console.log(listeningLine(info.address, info.port, service, note)),
  ) as Server;
  const closed = new Promise<void>((resolve) => server.once("close", () => resolve()));
  return {
    shutdown: () => {
      server.close();
      return closed;
    },
    abort: () => {
      server.close();
      server.closeAllConnections();
      return closed;
    },
  };
}

async function main(): Promise<number> {
  const cores = availableParallelism(); // Node 20 has no navigator.hardwareConcurrency
  const service = await buildService({
    args: process.argv.slice(2),
    env: process.env,
    cores,
    fileEvents: false,
    decodeWorkers: false,
    // onnxruntime's auto thread count reads navigator, which Node 20 lacks: count here.
    prepare: (config) => ({ ...config, threads: config.threads || cores }),
  });
  if (typeof service === "number") return service;
  const closing = listen(service);
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      process.on(sig, () => void service.stop(closing).then(resolve));
    }
  });
  return 0;
}

process.exitCode = await main();
