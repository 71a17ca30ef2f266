/**
 * The server binary on Deno (`deno task serve`): the service of serve/service.ts (flags, backend,
 * registry source, hot swaps, traffic, app) served with Deno.serve, plus what only Deno does
 * here: file events on a local registry, large-image decoding in Workers, and --replicas (more
 * service processes on the same port, with one /metrics over all of them, serve/replicas.ts).
 * SIGINT and SIGTERM drain the requests in flight before the connections close.
 */
import type { ServeConfig } from "./config.ts";
import {
  grantedPermissionFlags,
  isReplica,
  type ReplicaMetrics,
  replicaMetrics,
  ReplicaSet,
  supervisorMetrics,
  watchSupervisor,
} from "./replicas.ts";
import { buildService, listeningLine, type Service } from "./service.ts";

/** Replicas share the cores (auto counts become per replica); a supervisor needs --allow-run. */
function shareCores(config: ServeConfig, supervisor: boolean): ServeConfig | number {
  if (supervisor && Deno.permissions.querySync({ name: "run" }).state !== "granted") {
    console.error(
      `--replicas ${config.replicas} starts ${
        config.replicas - 1
      } more service process(es) and needs --allow-run (deno task serve:replicas has it)`,
    );
    return 2;
  }
  if (config.replicas <= 1) return config;
  const cores = navigator.hardwareConcurrency || 1;
  const share = Math.max(1, Math.floor(cores / config.replicas));
  return { ...config, threads: config.threads || share, workers: config.workers || share };
}

/** The supervisor's other replicas: the same service on the port this one got. */
function startReplicas(config: ServeConfig, port: number, cluster: ReplicaMetrics): ReplicaSet {
  const replicas = new ReplicaSet({
    count: config.replicas - 1,
    script: new URL(import.meta.url).pathname,
    denoFlags: [
      ...grantedPermissionFlags(),
      "--unstable-net",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
    ],
    env: cluster.env,
    // Later flags win: the same service, on the port this one got, with its share of cores.
    args: [
      ...Deno.args,
      "--replicas=1",
      "--reuse-port",
      `--port=${port}`,
      `--threads=${config.threads}`,
      `--workers=${config.workers}`,
    ],
  });
  replicas.start();
  console.log(`Starting ${config.replicas - 1} more replica(s) on port ${port}`);
  return replicas;
}

/** Deno.serve on the configured address; `cut` aborts the connections still open. */
function listen(service: Service, cut: AbortController): Deno.HttpServer<Deno.NetAddr> {
  const { config } = service;
  return Deno.serve({
    signal: cut.signal,
    port: config.port,
    hostname: config.host,
    reusePort: config.reusePort,
    onListen: ({ hostname, port }) => console.log(listeningLine(hostname, port, service)),
  }, service.app.fetch);
}

async function main(): Promise<number> {
  // Replicas: /metrics anywhere covers all of them (replicas.ts, loopback control servers).
  let cluster: ReplicaMetrics | null = null;
  let replicas: ReplicaSet | null = null;
  const supervises = (config: ServeConfig) => config.replicas > 1 && !isReplica();
  const service = await buildService({
    args: Deno.args,
    env: Deno.env.toObject(),
    cores: navigator.hardwareConcurrency || 1,
    fileEvents: true,
    decodeWorkers: true,
    prepare: (config) => shareCores(config, supervises(config)),
    renderMetrics: (own, config) => {
      if (supervises(config)) cluster = supervisorMetrics(own, () => replicas);
      else if (isReplica()) cluster = replicaMetrics(own);
      return cluster?.render;
    },
  });
  if (typeof service === "number") return service;
  // Aborted when the grace period ends with requests still running: closes their connections.
  const cut = new AbortController();
  const server = listen(service, cut);
  if (supervises(service.config)) {
    replicas = startReplicas(service.config, server.addr.port, cluster!);
  }
  let stopping: Promise<void> | null = null;
  const closing = {
    shutdown: () => server.shutdown(),
    abort: () => {
      cut.abort();
      return server.finished;
    },
  };
  const stop = () =>
    stopping ??= service.stop(closing, () => [replicas?.stop(), cluster?.control.shutdown()]);
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => void stop());
  watchSupervisor(() => void stop());
  await server.finished;
  if (stopping) await stopping;
  return 0;
}

if (import.meta.main) Deno.exit(await main());
