/**
 * The server binary (`deno task serve`): parse flags, pick the onnxruntime backend, find the
 * bundle (--bundle, or the registry's CURRENT version of --model), load and validate it, and
 * serve createApp() with Deno.serve. When no model can be loaded it says why and how to get
 * one, and still serves /healthz (with /readyz answering 503), so orchestration sees a live
 * but unready process instead of a crash loop. Everything else lives in app.ts and inference/.
 */
import { resolve } from "node:path";
import { resolveActive } from "../common/registry.ts";
import { createApp } from "./app.ts";
import { ConfigError, helpText, parseConfig, type ServeConfig } from "./config.ts";
import {
  type Backend,
  loadBackend,
  type LoadedModel,
  loadModel,
  ModelSlot,
} from "./inference/mod.ts";
import { ServiceMetrics } from "./metrics.ts";

const HOW_TO_GET_A_MODEL = [
  "To get a model:",
  "  - train and export one with the trainer (npm run train; see README), which writes a bundle,",
  "  - or serve a bundle dir:  deno task serve --bundle <dir>   (e.g. tests/testdata/tiny-bundle),",
  "  - or publish to the registry: models/<name>/<version>/ plus models/<name>/CURRENT naming the version.",
].join("\n");

async function findBundle(config: ServeConfig): Promise<{ dir: string; origin: string }> {
  if (config.bundle !== undefined) return { dir: resolve(config.bundle), origin: "--bundle" };
  const active = await resolveActive(config.registry, config.model);
  return {
    dir: active.dir,
    origin: `registry ${resolve(config.registry)} (${active.name}/CURRENT = ${active.version})`,
  };
}

async function loadInitial(
  config: ServeConfig,
  backend: Backend,
  metrics: ServiceMetrics,
): Promise<{ model: LoadedModel | null; reason: string }> {
  let where = "";
  try {
    const { dir, origin } = await findBundle(config);
    where = dir;
    const t0 = performance.now();
    const model = await loadModel(dir, {
      backend,
      maxBatch: config.maxBatch,
      onBatch: (graph, rows) => metrics.batchSize.observe(rows, { graph }),
    });
    console.log(
      `Model ${model.name} version ${model.version} loaded from ${origin} in ${
        Math.round(performance.now() - t0)
      } ms ` +
        `(sha256 verified, ${model.probe?.cases} probe images within ${model.manifest.probe.tolerance}, max diff ${
          model.probe?.maxAbsDiff.toExponential(1)
        })`,
    );
    return { model, reason: "" };
  } catch (e) {
    const msg = (e as Error).message;
    console.error(
      `No model is being served: ${
        where ? `cannot load ${where}: ` : ""
      }${msg}\n${HOW_TO_GET_A_MODEL}`,
    );
    return { model: null, reason: msg };
  }
}

async function main(): Promise<number> {
  let config: ServeConfig | null;
  try {
    config = parseConfig(Deno.args, Deno.env.toObject()).config;
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
  let loaded;
  try {
    loaded = await loadBackend(config.backend, { threads: config.threads });
  } catch (e) {
    // Only an explicit --backend can fail here (auto falls back to wasm): a setup error.
    console.error(`Cannot start onnxruntime backend "${config.backend}": ${(e as Error).message}`);
    return 1;
  }
  const { backend, note } = loaded;
  console.log(`Backend: ${note}, ${config.threads} thread(s)`);
  const metrics = new ServiceMetrics();
  const { model, reason } = await loadInitial(config, backend, metrics);
  const slot = new ModelSlot(model, reason);
  const app = createApp({ slot, config, metrics });

  const server = Deno.serve({
    port: config.port,
    hostname: config.host,
    onListen: ({ hostname, port }) => {
      const shown = hostname === "0.0.0.0" ? "localhost" : hostname;
      console.log(
        `Listening on http://${shown}:${port}/ (${
          model ? `serving ${model.name}@${model.version}` : "NOT READY: /readyz answers 503"
        }; docs at /docs)`,
      );
    },
  }, app.fetch);

  const stop = async () => {
    console.log("Shutting down: finishing in-flight requests");
    await server.shutdown();
    await slot.close();
  };
  for (const sig of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(sig, () => void stop());
  await server.finished;
  return 0;
}

if (import.meta.main) Deno.exit(await main());
