/**
 * The service for the hot-swap tests and benches, built as serve/main.ts builds it (reloader +
 * registry watcher + app with the admin API) and listening on 127.0.0.1; one shared backend per
 * kind; a one-image classify call; and per-version expected labels computed by loading each
 * fixture (testkit/fixtures.ts) directly.
 */
import { argmax } from "../common/argmax.ts";
import { PIXELS } from "../common/labels.ts";
import { createApp } from "../serve/app.ts";
import { defaultConfig } from "../serve/config.ts";
import {
  type Backend,
  type BackendName,
  loadBackend,
  loadModel,
  ModelSlot,
  WorkerBackend,
} from "../serve/inference/mod.ts";
import { ServiceMetrics } from "../serve/metrics.ts";
import { DirSource, type RegistrySource } from "../serve/registry_source.ts";
import { Reloader } from "../serve/reload.ts";
import { type Watcher, watchRegistry } from "../serve/watch.ts";
import { FIXTURES, MODEL } from "./fixtures.ts";

export const ADMIN_TOKEN = "test-admin-token-0123456789";

/** version -> expected top label index per image, from each fixture loaded natively. */
export async function expectedLabels(images: Uint8Array[]): Promise<Map<string, number[]>> {
  const { backend } = await loadBackend("native", { threads: 1 });
  const out = new Map<string, number[]>();
  const x = new Float32Array(images.length * PIXELS);
  images.forEach((im, i) => x.set(Float32Array.from(im, (v) => v / 255), i * PIXELS));
  for (const dir of FIXTURES) {
    const m = await loadModel(dir, { backend, maxBatch: 64 });
    const r = await m.encode(x, images.length);
    const K = m.labels.length;
    out.set(m.version, images.map((_, i) => argmax(r.probabilities, i * K, K)));
    await m.close();
  }
  return out;
}

export interface TestService {
  url: string;
  app: ReturnType<typeof createApp>;
  reloader: Reloader;
  slot: ModelSlot;
  metrics: ServiceMetrics;
  logs: string[];
  close(): Promise<void>;
}

const backends = new Map<string, Backend>();

/** One backend per kind per test process (a wasm WorkerBackend keeps a standby worker). */
export async function backendFor(name: BackendName): Promise<Backend> {
  let b = backends.get(name);
  if (!b) {
    b = (await loadBackend(name, { threads: 1 })).backend;
    backends.set(name, b);
  }
  return b;
}

/** Closes the shared backends' standby workers (call at the end of a test module). */
export function closeBackends(): void {
  for (const b of backends.values()) if (b instanceof WorkerBackend) b.close();
  backends.clear();
}

/**
 * The service as serve/main.ts assembles it, on 127.0.0.1 with a free port: reloader over
 * `source` (default: the registry dir), registry watch (debounce 50 ms, poll `pollMs`), admin
 * API with ADMIN_TOKEN.
 */
export async function startService(opts: {
  registry: string;
  backend: BackendName;
  source?: RegistrySource;
  pollMs?: number;
  watch?: boolean;
}): Promise<TestService> {
  const backend = await backendFor(opts.backend);
  const config = defaultConfig({ registry: opts.registry, threads: 1 });
  const metrics = new ServiceMetrics();
  const slot = new ModelSlot(null, "loading");
  const logs: string[] = [];
  const source = opts.source ?? new DirSource(opts.registry, MODEL);
  const reloader = new Reloader({
    slot,
    source,
    metrics,
    log: (l) => logs.push(l),
    load: (dir) => loadModel(dir, { backend, maxBatch: config.maxBatch }),
  });
  const first = await reloader.request({ kind: "follow", reason: "startup" });
  if (first.status === "failed") throw new Error(`test service cannot start: ${first.error}`);
  const watcher: Watcher = watchRegistry(
    opts.watch === false ? undefined : source.watchDir,
    (why) => void reloader.request({ kind: "follow", reason: why }),
    { pollMs: opts.pollMs ?? 0, log: (l) => logs.push(l) },
  );
  const app = createApp({
    slot,
    config,
    metrics,
    reloader,
    adminToken: ADMIN_TOKEN,
    log: () => {},
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    app,
    reloader,
    slot,
    metrics,
    logs,
    async close() {
      watcher.close();
      await server.shutdown();
      await reloader.idle();
      await slot.close();
    },
  };
}

/** POSTs one raw 28x28 image to /v1/classify. */
export async function classify(
  url: string,
  image: Uint8Array,
): Promise<{ status: number; version: string | null; index: number | null }> {
  const res = await fetch(`${url}/v1/classify`, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: image as Uint8Array<ArrayBuffer>,
  });
  if (res.status !== 200) {
    await res.body?.cancel();
    return { status: res.status, version: res.headers.get("x-model-version"), index: null };
  }
  const body = await res.json();
  return {
    status: 200,
    version: res.headers.get("x-model-version"),
    index: body.predictions[0].index,
  };
}
