/**
 * The server binary (`deno task serve`): parse flags, pick the onnxruntime backend, load the
 * first bundle through the Reloader (--bundle, or the registry's CURRENT version of --model,
 * from a directory or an HTTP(S) registry), follow the registry for hot swaps (serve/watch.ts),
 * and serve createApp() with Deno.serve. When no model can be loaded it says why and how to get
 * one, and still serves /healthz (with /readyz answering 503), so orchestration sees a live
 * but unready process instead of a crash loop. Everything else lives in app.ts and inference/.
 */
import { Admission } from "./admission.ts";
import { createApp, ownMetricsText } from "./app.ts";
import { configOrExit, type ServeConfig } from "./config.ts";
import { DecodePool } from "./decode_pool.ts";
import { loadBackend, loadModel, ModelSlot, WorkerBackend } from "./inference/mod.ts";
import { ServiceMetrics } from "./metrics.ts";
import { Reloader } from "./reload.ts";
import { sourceOf } from "./source_of.ts";
import {
  grantedPermissionFlags,
  isReplica,
  replicaMetrics,
  ReplicaSet,
  supervisorMetrics,
  watchSupervisor,
} from "./replicas.ts";
import { type Watcher, watchRegistry } from "./watch.ts";
import { startGallery } from "./gallery/mod.ts";
import { Translator } from "./latents/translate.ts";
import { startTraffic, type Traffic } from "./traffic/mod.ts";

const HOW_TO_GET_A_MODEL = [
  "To get a model:",
  "  - train and export one with the trainer (npm run train; see README), which writes a bundle,",
  "  - or serve a bundle dir:  deno task serve --bundle <dir>   (e.g. tests/testdata/tiny-bundle),",
  "  - or publish to the registry: models/<name>/<version>/ plus models/<name>/CURRENT naming the version.",
].join("\n");

/** Starts following the registry: file events on a local one, polling as the safety net. */
function follow(config: ServeConfig, reloader: Reloader, traffic: Traffic): Watcher | null {
  const source = reloader.source;
  if (source.kind === "bundle") return null;
  const dir = source.kind === "dir" && config.watch ? source.watchDir : undefined;
  if (!dir && config.pollMs === 0) {
    console.error(
      `Not following ${source.description} (--no-watch / --poll-ms 0): new versions need POST /v1/admin/reload`,
    );
  }
  const onChange = (why: string) => {
    void reloader.request({ kind: "follow", reason: why });
    void traffic.refresh(why); // CANARY and SHADOW are followed like CURRENT
  };
  return watchRegistry(dir, onChange, { pollMs: config.pollMs });
}

async function main(): Promise<number> {
  const parsed = configOrExit(Deno.args, Deno.env.toObject());
  if (typeof parsed === "number") return parsed;
  let config: ServeConfig = parsed;
  const supervisor = config.replicas > 1 && !isReplica();
  if (supervisor && Deno.permissions.querySync({ name: "run" }).state !== "granted") {
    console.error(
      `--replicas ${config.replicas} starts ${
        config.replicas - 1
      } more service process(es) and needs --allow-run (deno task serve:replicas has it)`,
    );
    return 2;
  }
  if (config.replicas > 1) {
    // The cores are shared by the replicas: auto counts are per replica.
    const cores = navigator.hardwareConcurrency || 1;
    const share = Math.max(1, Math.floor(cores / config.replicas));
    config = { ...config, threads: config.threads || share, workers: config.workers || share };
  }
  let loaded;
  try {
    loaded = await loadBackend(config.backend, {
      threads: config.threads,
      workers: config.workers,
      depth: config.pipelineDepth,
    });
  } catch (e) {
    // Only an explicit --backend can fail here (auto falls back to wasm): a setup error.
    console.error(`Cannot start onnxruntime backend "${config.backend}": ${(e as Error).message}`);
    return 1;
  }
  const { backend, note } = loaded;
  console.log(
    `Backend: ${note}; batches up to ${config.maxBatch}, max queue delay ${config.maxQueueDelayMs} ms`,
  );
  const metrics = new ServiceMetrics();
  const slot = new ModelSlot(null, "the first model is still loading");
  const load = (dir: string) =>
    loadModel(dir, {
      backend,
      maxBatch: config.maxBatch,
      maxQueueDelayMs: config.maxQueueDelayMs,
      chunkRows: config.chunkRows,
      precision: config.precision,
      onBatch: (graph, rows, stats) => metrics.observeBatch(graph, rows, stats),
      onRun: (graph, seconds, _rows, compute) => metrics.observeRun(graph, seconds, compute),
    });
  const source = await sourceOf(config, Deno.env.toObject());
  const reloader = new Reloader({ slot, source, metrics, load });
  const traffic = startTraffic({ config, slot, source, load, metrics });
  // The first load goes through the reloader too, so a bad bundle at start is reported the
  // same way (lastError, metrics) and a later publish can still make the server ready.
  const first = await reloader.request({ kind: "follow", reason: "startup" });
  if (first.status === "failed") {
    console.error(`No model is being served: ${first.error}\n${HOW_TO_GET_A_MODEL}`);
  }
  const model = slot.current;
  await traffic.refresh("startup");
  const watcher = follow(config, reloader, traffic);
  // Replicas: /metrics anywhere covers all of them (replicas.ts, loopback control servers).
  const own = () => ownMetricsText(metrics, slot);
  let replicas: ReplicaSet | null = null;
  const cluster = supervisor
    ? supervisorMetrics(own, () => replicas)
    : isReplica()
    ? replicaMetrics(own)
    : null;
  const admission = new Admission({ maxInflight: config.maxInflight });
  const decoder = new DecodePool();
  const translator = new Translator({ minNeighbours: config.translateMinNeighbours });
  const gallery = startGallery({
    path: config.gallery,
    slot,
    translator,
    seed: { count: config.gallerySeed, dataDir: config.dataDir },
    batch: config.galleryBatch,
    pauseMs: config.galleryPauseMs,
  });
  const app = createApp({
    slot,
    config,
    metrics,
    reloader,
    adminToken: config.adminToken,
    renderMetrics: cluster?.render,
    admission,
    decoder,
    translator,
    gallery,
    traffic,
  });
  if (config.adminToken) console.log("Admin API enabled at /v1/admin (bearer token set)");

  // Aborted when the grace period ends with requests still running: closes their connections.
  const cut = new AbortController();
  const server = Deno.serve({
    signal: cut.signal,
    port: config.port,
    hostname: config.host,
    reusePort: config.reusePort,
    onListen: ({ hostname, port }) => {
      const shown = hostname === "0.0.0.0" ? "localhost" : hostname;
      console.log(
        `Listening on http://${shown}:${port}/ (${
          model ? `serving ${model.name}@${model.version}` : "NOT READY: /readyz answers 503"
        }; docs at /docs)`,
      );
    },
  }, app.fetch);

  if (supervisor) {
    replicas = new ReplicaSet({
      count: config.replicas - 1,
      script: new URL(import.meta.url).pathname,
      denoFlags: [
        ...grantedPermissionFlags(),
        "--unstable-net",
        `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      ],
      env: cluster!.env,
      // Later flags win: the same service, on the port this one got, with its share of cores.
      args: [
        ...Deno.args,
        "--replicas=1",
        "--reuse-port",
        `--port=${server.addr.port}`,
        `--threads=${config.threads}`,
        `--workers=${config.workers}`,
      ],
    });
    replicas.start();
    console.log(`Starting ${config.replicas - 1} more replica(s) on port ${server.addr.port}`);
  }

  let stopping: Promise<void> | null = null;
  // Drain first: Deno's server.shutdown() would break the body reads of in-flight requests.
  const drainThenClose = async () => {
    console.log(
      `Shutting down: new requests get 503, finishing ${admission.inflight} in-flight request(s) (grace ${config.shutdownGraceMs} ms)`,
    );
    const d = await admission.drain(config.shutdownGraceMs);
    if (d.left === 0) {
      console.log(`In-flight requests finished in ${Math.round(d.ms)} ms; closing connections`);
      await server.shutdown();
    } else {
      console.log(`Grace period over: closing connections with ${d.left} request(s) still running`);
      cut.abort();
      await server.finished;
    }
  };
  const stop = () =>
    stopping ??= (async () => {
      watcher?.close();
      await Promise.all([drainThenClose(), replicas?.stop(), cluster?.control.shutdown()]);
      decoder.close();
      await reloader.idle();
      await traffic.close();
      await gallery.close();
      await slot.close();
      if (backend instanceof WorkerBackend) backend.close();
    })();
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => void stop());
  watchSupervisor(() => void stop());
  await server.finished;
  if (stopping) await stopping;
  return 0;
}

if (import.meta.main) Deno.exit(await main());
