/**
 * Fixtures for the hot-swap tests and benches: the three committed tiny bundles (same recipe,
 * different seeds, so they disagree on some images), a temporary registry, a service built as
 * serve/main.ts builds it (reloader + watcher + app) listening on 127.0.0.1, and per-version
 * expected labels computed by loading each fixture directly.
 */
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PIXELS } from "../common/labels.ts";
import { decodeProbePixels, type Manifest } from "../bundle/mod.ts";
import { activateVersion } from "../common/registry_write.ts";
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

const here = (p: string) => new URL(p, import.meta.url).pathname;
export const FIXTURES = [
  here("./testdata/tiny-bundle"),
  here("./testdata/tiny-bundle-b"),
  here("./testdata/tiny-bundle-c"),
];
export const MODEL = "fashion-vae";
export const ADMIN_TOKEN = "test-admin-token-0123456789";

export function manifestOf(dir: string): Manifest {
  return JSON.parse(Deno.readTextFileSync(join(dir, "manifest.json")));
}
export const VERSIONS = FIXTURES.map((d) => manifestOf(d).version);

/** A temporary registry holding every fixture, CURRENT on the first. Copies (no onnxruntime check). */
export async function makeRegistry(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), "swap-registry-"));
  for (const [i, dir] of FIXTURES.entries()) {
    await cp(dir, join(root, MODEL, VERSIONS[i]), { recursive: true });
  }
  await activateVersion(root, MODEL, VERSIONS[0], "publish");
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** The probe images of all fixtures (24 images of 784 bytes): the inputs the load tests send. */
export function probeImages(): Uint8Array[] {
  return FIXTURES.flatMap((d) => manifestOf(d).probe.cases.map((c) => decodeProbePixels(c.pixels)));
}

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
    out.set(
      m.version,
      images.map((_, i) => {
        const p = r.probabilities.subarray(i * K, (i + 1) * K);
        return p.indexOf(Math.max(...p));
      }),
    );
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

/** Polls until pred() holds, every `everyMs`; throws with `what` after `timeoutMs`. */
export async function waitFor(
  pred: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  everyMs = 5,
): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await pred())) {
    if (performance.now() > end) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
