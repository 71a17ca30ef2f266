/**
 * The edge profile: the same Hono app (/v1 and /v2) as a `{ fetch }` handler, what `deno serve`
 * and Deno Deploy run (`deno task serve:edge`). It needs no Web Workers, FFI, native addon,
 * writable file system or subprocess: onnxruntime-web runs in this isolate with one thread;
 * the model comes from an HTTP(S) registry (polled, downloaded and sha256-checked in memory)
 * or a read-only directory beside the code. Hot swaps go through the same Reloader as the
 * server (validated, then switched atomically). Memory stays bounded across swaps because
 * every version's sessions live in the one wasm heap, which frees the old version's memory
 * for the next one to reuse, and each version is downloaded into the last one's buffers, so a
 * swap leaves V8 no large garbage (docs/edge.md; tests/edge_serve_test.ts checks the plateau).
 * Settings come from the environment (serve/edge/config.ts). Until the first model is loaded,
 * requests get 503 and the readiness routes say why.
 */
import { servedBy } from "../bundle/mod.ts";
import { createApp } from "./app.ts";
import { edgeConfig } from "./edge/config.ts";
import { MemorySource } from "./edge/memory_source.ts";
import { memoryLine, trackWasmMemory } from "./edge/wasm_heap.ts";
import { loadBackend } from "./inference/backend.ts";
import { loadModel, loadModelFromMemory, type LoadOptions } from "./inference/model.ts";
import { ModelSlot } from "./inference/slot.ts";
import { ServiceMetrics } from "./metrics.ts";
import { BundleSource, DirSource, type RegistrySource } from "./registry_source.ts";
import { Reloader } from "./reload.ts";
import { watchRegistry } from "./watch.ts";

trackWasmMemory(); // before onnxruntime-web creates its heap
const config = edgeConfig(Deno.env.toObject(), new URL("../", import.meta.url));
const metrics = new ServiceMetrics();
const slot = new ModelSlot(null, "the first model is still loading");
// In-process wasm (isolate: false): the only runtime with neither Workers nor native code.
const { backend } = await loadBackend("wasm", { threads: 1, isolate: false });
const opts: LoadOptions = {
  backend,
  maxBatch: config.serve.maxBatch,
  maxQueueDelayMs: config.serve.maxQueueDelayMs,
  onBatch: (graph, rows, stats) => metrics.observeBatch(graph, rows, stats),
  onRun: (graph, seconds, _rows, compute) => metrics.observeRun(graph, seconds, compute),
};
const src = config.source;
// Downloads only what the loader reads at the edge's precision (no checkpoint, one graph).
const roles = servedBy(config.serve.precision);
const memory = src.kind === "http" ? new MemorySource(src.url, src.model, fetch, roles) : null;
const source: RegistrySource = src.kind === "http"
  ? memory!
  : src.kind === "bundle"
  ? new BundleSource(src.dir)
  : new DirSource(src.dir, src.model);
async function loadDownloaded(memory: MemorySource, label: string) {
  const bundle = memory.take(label);
  try {
    return await loadModelFromMemory(bundle, opts);
  } finally {
    memory.recycle(bundle); // the next version is read into these buffers
  }
}
const reloader = new Reloader({
  slot,
  source,
  metrics,
  load: (where) => memory ? loadDownloaded(memory, where) : loadModel(where, opts),
});
const app = createApp({ slot, config: config.serve, metrics, reloader });

const follow = (why: string) =>
  reloader.request({ kind: "follow", reason: why }).then((o) => {
    if (o.status === "swapped" && !o.superseded) console.log(memoryLine(o.version!));
    return o;
  });
void follow("startup").then((o) => {
  if (o.status === "failed") console.error(`No model is being served yet: ${o.error}`);
});
if (src.kind !== "bundle") {
  // Polling only: file watching needs more than a read-only isolate may have.
  watchRegistry(undefined, (why) => void follow(why), { pollMs: config.pollMs });
}
console.log(
  `latent-edge (edge profile): wasm in-process, 1 thread; model from ${source.description}`,
);

export default {
  fetch: (req: Request) => app.fetch(req),
} satisfies Deno.ServeDefaultExport;
