/**
 * The service's parts wired in start-up order, one definition for both entries (serve/main.ts
 * on Deno, serve/node.ts on Node): flags, the onnxruntime backend, the registry source, the slot
 * and its Reloader with the first load, canary and shadow traffic, following the registry, then
 * the app with admission, decoding, latent translation, the gallery and metrics. When no model
 * can be loaded it says why and how to get one, and the app still serves /healthz (with /readyz
 * answering 503), so orchestration sees a live but unready process instead of a crash loop. An
 * entry adds only what its runtime does differently: listening, signals and (Deno) replicas.
 */
import { Admission, type DrainResult } from "./admission.ts";
import { createApp, ownMetricsText } from "./app.ts";
import { configOrExit, type ServeConfig } from "./config.ts";
import { DecodePool } from "./decode_pool.ts";
import type { GalleryHandle } from "./gallery/routes.ts";
import { type Backend, loadBackend } from "./inference/backend.ts";
import { type LoadedModel, loadModel } from "./inference/model.ts";
import { ModelSlot } from "./inference/slot.ts";
import { WorkerBackend } from "./inference/worker.ts";
import { Translator } from "./latents/translate.ts";
import { ServiceMetrics } from "./metrics.ts";
import { Reloader } from "./reload.ts";
import { sourceOf } from "./source_of.ts";
import { startTraffic, type Traffic } from "./traffic/mod.ts";
import { type Watcher, watchRegistry } from "./watch.ts";

const HOW_TO_GET_A_MODEL = [
  "To get a model:",
  "  - train and export one with the trainer (npm run train; see README), which writes a bundle,",
  "  - or serve a bundle dir:  deno task serve --bundle <dir>   (e.g. tests/testdata/tiny-bundle),",
  "  - or publish to the registry: models/<name>/<version>/ plus models/<name>/CURRENT naming the version.",
].join("\n");

/** What differs between the runtimes that start the service. */
export interface Runtime {
  /** The command line without the program name, and the environment. */
  args: readonly string[];
  env: Record<string, string | undefined>;
  /** This machine's cores (--replicas 0 counts them; Node 20 has no navigator). */
  cores: number;
  /** Whether a local registry is also followed by file events (Deno.watchFs); else polling only. */
  fileEvents: boolean;
  /** Whether large images decode in Web Workers (Deno's); else inline. */
  decodeWorkers: boolean;
  /** Adjusts the parsed config before anything starts, or refuses it with an exit code. */
  prepare?: (config: ServeConfig) => ServeConfig | number;
  /** What GET /metrics answers, given this process's own metrics (replicas merge theirs). */
  renderMetrics?: (
    own: () => string,
    config: ServeConfig,
  ) => (() => Promise<string>) | undefined;
}

/** How an entry's HTTP server is closed once the drain is over. */
export interface Closing {
  /** Every request finished: close the connections gracefully. */
  shutdown(): Promise<void>;
  /** The grace period is over with requests still running: cut their connections. */
  abort(): Promise<void>;
}

export interface Service {
  config: ServeConfig;
  app: ReturnType<typeof createApp>;
  slot: ModelSlot;
  reloader: Reloader;
  traffic: Traffic;
  admission: Admission;
  /** The model serving once start-up loaded what it could (null: unready). */
  first: LoadedModel | null;
  /**
   * Stops following, drains in-flight requests (new ones get 503), closes the server through
   * `closing` (alongside `also`), then releases every part. Later calls return the same promise.
   */
  stop(closing: Closing, also?: () => (Promise<unknown> | undefined)[]): Promise<void>;
}

/** The parts loading and swapping models: backend, metrics, slot, source, reloader, traffic. */
interface Models {
  backend: Backend;
  metrics: ServiceMetrics;
  slot: ModelSlot;
  reloader: Reloader;
  traffic: Traffic;
}

/** Flags into a config, adjusted by the runtime; a number is the exit code (help, bad flags). */
function configOf(rt: Runtime): ServeConfig | number {
  const parsed = configOrExit(rt.args, rt.env, rt.cores);
  if (typeof parsed === "number" || !rt.prepare) return parsed;
  return rt.prepare(parsed);
}

/** The onnxruntime backend the flags ask for, or null after saying why it cannot start. */
async function backendOf(config: ServeConfig): Promise<Backend | null> {
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
    return null;
  }
  console.log(
    `Backend: ${loaded.note}; batches up to ${config.maxBatch}, max queue delay ${config.maxQueueDelayMs} ms`,
  );
  return loaded.backend;
}

/** The slot, its Reloader and the traffic over one source, after the first load. */
async function startModels(config: ServeConfig, rt: Runtime, backend: Backend): Promise<Models> {
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
  const source = await sourceOf(config, rt.env);
  const reloader = new Reloader({ slot, source, metrics, load });
  const traffic = startTraffic({ config, slot, source, load, metrics });
  // The first load goes through the reloader too, so a bad bundle at start is reported the
  // same way (lastError, metrics) and a later publish can still make the server ready.
  const first = await reloader.request({ kind: "follow", reason: "startup" });
  if (first.status === "failed") {
    console.error(`No model is being served: ${first.error}\n${HOW_TO_GET_A_MODEL}`);
  }
  return { backend, metrics, slot, reloader, traffic };
}

/** Starts following the registry: file events on a local one, polling as the safety net. */
function follow(config: ServeConfig, rt: Runtime, m: Models): Watcher | null {
  const source = m.reloader.source;
  if (source.kind === "bundle") return null;
  const dir = source.kind === "dir" && config.watch && rt.fileEvents ? source.watchDir : undefined;
  if (!dir && config.pollMs === 0) {
    console.error(
      `Not following ${source.description} (--no-watch / --poll-ms 0): new versions need POST /v1/admin/reload`,
    );
  }
  const onChange = (why: string) => {
    void m.reloader.request({ kind: "follow", reason: why });
    void m.traffic.refresh(why); // CANARY and SHADOW are followed like CURRENT
  };
  return watchRegistry(dir, onChange, { pollMs: config.pollMs });
}

/**
 * The gallery, loaded only here: it needs node:sqlite (Deno, Node 22.5+). Without it the
 * service serves on and /v1/similar says why.
 */
async function openGallery(
  config: ServeConfig,
  slot: ModelSlot,
  translator: Translator,
): Promise<GalleryHandle & { close: () => Promise<void> }> {
  const close = async () => {};
  try {
    const { startGallery } = await import("./gallery/mod.ts");
    return startGallery({
      path: config.gallery,
      slot,
      translator,
      seed: { count: config.gallerySeed, dataDir: config.dataDir },
      batch: config.galleryBatch,
      pauseMs: config.galleryPauseMs,
    });
  } catch (e) {
    if (!config.gallery) {
      return { current: null, reason: "the service was started without --gallery <file>", close };
    }
    const reason = `the gallery needs node:sqlite, which this runtime lacks (${
      (e as Error).message
    })`;
    console.log(`Gallery disabled: ${reason}; classification and the rest of the API still serve`);
    return { current: null, reason, close };
  }
}

/** Finishes the requests in flight within the grace period, then closes the server. */
async function drainThenClose(
  admission: Admission,
  graceMs: number,
  closing: Closing,
): Promise<DrainResult> {
  // Drain first: Deno's server.shutdown() would break the body reads of in-flight requests.
  console.log(
    `Shutting down: new requests get 503, finishing ${admission.inflight} in-flight request(s) (grace ${graceMs} ms)`,
  );
  const d = await admission.drain(graceMs);
  if (d.left === 0) {
    console.log(`In-flight requests finished in ${Math.round(d.ms)} ms; closing connections`);
    await closing.shutdown();
  } else {
    console.log(`Grace period over: closing connections with ${d.left} request(s) still running`);
    await closing.abort();
  }
  return d;
}

/**
 * Builds the whole service for `rt`, in start-up order; a number is the exit code of a start
 * that cannot go on (help, bad flags, a backend that cannot start, a runtime's refusal).
 */
export async function buildService(rt: Runtime): Promise<Service | number> {
  const config = configOf(rt);
  if (typeof config === "number") return config;
  const backend = await backendOf(config);
  if (!backend) return 1;
  const m = await startModels(config, rt, backend);
  const first = m.slot.current;
  await m.traffic.refresh("startup");
  const watcher = follow(config, rt, m);
  const admission = new Admission({ maxInflight: config.maxInflight });
  const decoder = rt.decodeWorkers ? new DecodePool() : undefined;
  const translator = new Translator({ minNeighbours: config.translateMinNeighbours });
  const gallery = await openGallery(config, m.slot, translator);
  const { slot, metrics, reloader, traffic } = m;
  const app = createApp({
    slot,
    config,
    metrics,
    reloader,
    adminToken: config.adminToken,
    renderMetrics: rt.renderMetrics?.(() => ownMetricsText(metrics, slot), config),
    admission,
    decoder,
    translator,
    gallery,
    traffic,
  });
  if (config.adminToken) console.log("Admin API enabled at /v1/admin (bearer token set)");
  let stopping: Promise<void> | null = null;
  const stop = (closing: Closing, also: () => (Promise<unknown> | undefined)[] = () => []) =>
    stopping ??= (async () => {
      watcher?.close();
      await Promise.all([drainThenClose(admission, config.shutdownGraceMs, closing), ...also()]);
      decoder?.close();
      await reloader.idle();
      await traffic.close();
      await gallery.close();
      await slot.close();
      if (backend instanceof WorkerBackend) backend.close();
    })();
  return { config, app, slot, reloader, traffic, admission, first, stop };
}

/** The "Listening on" line both entries print (tests and scripts wait for it). */
export function listeningLine(host: string, port: number, service: Service, note = ""): string {
  const shown = host === "0.0.0.0" ? "localhost" : host;
  const model = service.first;
  const state = model ? `serving ${model.name}@${model.version}` : "NOT READY: /readyz answers 503";
  return `Listening on http://${shown}:${port}/ (${state}; docs at /docs${note})`;
}
