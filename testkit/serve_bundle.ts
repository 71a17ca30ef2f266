/**
 * A bundle served in-process for tests and scripts: loaded on a backend and wrapped in the
 * service's app exactly as serve/main.ts does, minus the port (requests go through
 * app.request()).
 */
import { createApp } from "../serve/app.ts";
import { defaultConfig, type ServeConfig } from "../serve/config.ts";
import {
  type BackendName,
  loadBackend,
  type LoadedModel,
  loadModel,
  ModelSlot,
} from "../serve/inference/mod.ts";
import { ServiceMetrics } from "../serve/metrics.ts";
import { TINY_BUNDLE } from "./fixtures.ts";

export interface Served {
  backend: BackendName;
  model: LoadedModel;
  slot: ModelSlot;
  metrics: ServiceMetrics;
  config: ServeConfig;
  app: ReturnType<typeof createApp>;
}

/** Loads `dir` on `backend` and builds an app around it, as main.ts does minus the port. */
export async function serveBundle(
  backend: BackendName,
  dir = TINY_BUNDLE,
  over: Partial<ServeConfig> = {},
): Promise<Served> {
  const config = defaultConfig({ bundle: dir, threads: 2, ...over });
  const metrics = new ServiceMetrics();
  const { backend: b } = await loadBackend(backend, { threads: config.threads });
  const model = await loadModel(dir, {
    backend: b,
    maxBatch: config.maxBatch,
    precision: config.precision,
    onBatch: (graph, rows) => metrics.batchSize.observe(rows, { graph }),
  });
  const slot = new ModelSlot(model);
  // Unexpected errors fail the tests loudly through the 500 status; keep the log quiet.
  const app = createApp({ slot, config, metrics, log: () => {} });
  return { backend, model, slot, metrics, config, app };
}
