/**
 * The HTTP API as a Hono app built from its dependencies (createApp({slot, config, metrics})),
 * so tests drive it with app.request() and main.ts only adds Deno.serve. Each model request
 * pins the current model for its whole life (slot.use), so a hot swap never mixes versions
 * within a response, and names the version that answered in the body and X-Model-Version.
 * Errors: handlers throw ApiError; the one onError below renders {"error": {code, message}}
 * and logs anything unexpected as a 500.
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { listVersions, type VersionInfo } from "../registry/registry.ts";
import type { ServeConfig } from "./config.ts";
import { demoRoutes } from "./demo/mod.ts";
import { renderDocs } from "./docs.ts";
import { ApiError, errorBody } from "./errors.ts";
import type { EncodeOutput, LoadedModel, ModelSlot } from "./inference/mod.ts";
import { NoModelError } from "./inference/slot.ts";
import {
  type InputLimits,
  parsePreprocessMode,
  readImageBatch,
  readLatent,
  readOneImage,
} from "./inputs.ts";
import { routeLabel, ServiceMetrics } from "./metrics.ts";
import { openApiDoc } from "./openapi.ts";
import { pngResponse } from "./png_response.ts";
import { adminRoutes, bearerAuth } from "./admin.ts";
import type { Admission } from "./admission.ts";
import type { DecodePool } from "./decode_pool.ts";
import { FailureThrottle } from "./auth_throttle.ts";
import type { Reloader } from "./reload.ts";
import { normalSource, sampleLatent } from "./sampling.ts";
import { v2Routes } from "./v2/mod.ts";
import { type NoveltyField, noveltyFields, noveltyInfo, noveltyJudge } from "./novelty.ts";
import { evaluationInfo } from "./evaluation_info.ts";
import { latentRoutes, spaceOf } from "./latents/routes.ts";
import { Translator } from "./latents/translate.ts";
import { galleryAdminRoutes, type GalleryHandle, galleryRoutes } from "./gallery/routes.ts";

export type AppConfig =
  & Pick<
    ServeConfig,
    "maxBodyBytes" | "maxPixels" | "maxBatch" | "maxSamples" | "registry" | "bundle"
  >
  & Partial<
    Pick<
      ServeConfig,
      "bodyTimeoutMs" | "maxDecodedBytes" | "noveltyPercentile" | "translateMinNeighbours"
    >
  >;

export interface AppDeps {
  slot: ModelSlot;
  config: AppConfig;
  metrics?: ServiceMetrics;
  /** Where unexpected errors are reported (default console.error). */
  log?: (message: string, error?: unknown) => void;
  /** Hot swapping (serve/reload.ts): its status shows in /v1/models, and it backs /v1/admin. */
  reloader?: Reloader;
  /** Enables /v1/admin (serve/admin.ts) when set; requests need `Authorization: Bearer <it>`. */
  adminToken?: string;
  /** Where large images decode, off the HTTP thread (serve/decode_pool.ts); default inline. */
  decoder?: DecodePool;
  /** Admission control: in-flight cap and graceful drain (serve/admission.ts); none by default. */
  admission?: Admission;
  /** Wrong-token throttling for /v1/admin (default: serve/auth_throttle.ts's defaults). */
  adminThrottle?: FailureThrottle;
  /**
   * What GET /metrics answers when this process is one of several replicas (main.ts): all of
   * theirs, merged. Default: this process's own metrics (ownMetricsText()).
   */
  renderMetrics?: () => Promise<string>;
  /** Chains bundles' latent translations (default: one with config.translateMinNeighbours). */
  translator?: Translator;
  /** The similarity gallery (serve/gallery/), or why there is none; /v1/similar answers 503 without. */
  gallery?: GalleryHandle;
}

/** This process's metrics in the exposition format, with the active model filled in. */
export function ownMetricsText(metrics: ServiceMetrics, slot: ModelSlot): string {
  const m = slot.current;
  metrics.setActive(m ? { name: m.name, version: m.version, backend: m.backend } : null);
  return metrics.render();
}

/** Routes with a fixed label for metrics (routeLabel() adds the /v2 templates; the rest is "other"). */
const ROUTES = [
  "/v1/classify",
  "/v1/latent",
  "/v1/reconstruct",
  "/v1/decode",
  "/v1/models",
  "/healthz",
  "/readyz",
  "/metrics",
  "/openapi.json",
  "/docs",
  "/v1/admin/reload",
  "/",
  "/v1/preprocess",
  "/v1/models/active/latent-map",
  "/v1/models/active/samples",
  "/v1/latent/translate",
  "/v1/similar",
  "/v1/gallery",
];

function modelRef(m: LoadedModel) {
  return { name: m.name, version: m.version };
}

function setModelHeaders(c: Context, m: LoadedModel): void {
  c.header("X-Model-Name", m.name);
  c.header("X-Model-Version", m.version);
  c.header("X-Latent-Space", spaceOf(m));
}

function argmax(a: Float32Array, from: number, len: number): number {
  let best = 0;
  for (let i = 1; i < len; i++) if (a[from + i] > a[from + best]) best = i;
  return best;
}

/** a[from..to) as plain numbers for JSON: a loop, several times cheaper than Array.from(view). */
function numbers(a: Float32Array, from: number, to: number): number[] {
  const out = new Array<number>(to - from);
  for (let i = from; i < to; i++) out[i - from] = a[i];
  return out;
}

function intParam(c: Context, name: string, min: number, max: number): number | undefined {
  const raw = c.req.query(name);
  if (raw === undefined || raw === "") return undefined;
  const v = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new ApiError(
      400,
      "bad_parameter",
      `${name} must be an integer in ${min}..${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return v;
}

/** ?abstain=true|false (default false). */
function boolParam(c: Context, name: string): boolean {
  const raw = c.req.query(name);
  if (raw === undefined || raw === "" || raw === "false" || raw === "0") return false;
  if (raw === "true" || raw === "1") return true;
  throw new ApiError(
    400,
    "bad_parameter",
    `${name} must be true or false, got ${JSON.stringify(raw)}`,
  );
}

/** Hot-swap state for /v1/models: the last rejected bundle stays visible here. */
function reloadInfo(r: Reloader) {
  const s = r.status();
  return {
    lastError: s.lastError,
    reload: {
      source: s.source,
      reloading: s.reloading,
      swaps: s.swaps,
      failures: s.failures,
      lastSwap: s.lastSwap,
    },
  };
}

export function createApp(deps: AppDeps): Hono {
  const { slot, config } = deps;
  const metrics = deps.metrics ?? new ServiceMetrics();
  const log = deps.log ?? ((msg: string, e?: unknown) => console.error(msg, e ?? ""));
  const limits: InputLimits = {
    maxBodyBytes: config.maxBodyBytes,
    maxPixels: config.maxPixels,
    maxBatch: config.maxBatch,
    bodyTimeoutMs: config.bodyTimeoutMs,
    maxDecodedBytes: config.maxDecodedBytes,
    decoder: deps.decoder,
  };
  const doc = openApiDoc({ ...limits, maxSamples: config.maxSamples });
  const app = new Hono();

  // Counts and times every request, and names the active model on responses that did not
  // already name the model that produced them.
  app.use("*", async (c, next) => {
    const start = performance.now();
    await next();
    const route = routeLabel(c.req.path, ROUTES);
    metrics.requests.inc({ route, method: c.req.method, status: String(c.res.status) });
    metrics.latency.observe((performance.now() - start) / 1000, { route });
    const active = slot.current;
    if (active && !c.res.headers.has("X-Model-Version")) {
      c.res.headers.set("X-Model-Name", active.name);
      c.res.headers.set("X-Model-Version", active.version);
    }
  });

  if (deps.admission) app.use("*", deps.admission.middleware());

  // Runs fn with the current model pinned; an empty slot is a 503, not a crash.
  const withModel = <T>(fn: (m: LoadedModel) => Promise<T>): Promise<T> =>
    slot.use(fn).catch((e) => {
      if (e instanceof NoModelError) throw new ApiError(503, "not_ready", e.message);
      throw e;
    });

  // The novelty of each encoded image, counted in /metrics under the model that judged it.
  const judgeNovelty = (m: LoadedModel, out: EncodeOutput, images: Float32Array) => {
    const fields = noveltyFields(noveltyJudge(m, config.noveltyPercentile), out, images);
    metrics.observeNovelty(m, fields);
    return fields;
  };

  app.post("/v1/classify", async (c) => {
    const mode = parsePreprocessMode(c.req.query("preprocess"));
    const abstain = boolParam(c, "abstain");
    const batch = await readImageBatch(c.req.raw, limits, mode);
    return await withModel(async (m) => {
      const out = await m.encode(batch.images, batch.count);
      metrics.images.inc({ route: "/v1/classify" }, batch.count);
      const novelty = judgeNovelty(m, out, batch.images);
      const K = m.labels.length, L = m.latentSize, space = spaceOf(m);
      const predictions = [];
      for (let i = 0; i < out.count; i++) {
        const index = argmax(out.probabilities, i * K, K);
        const refuse = abstain && novelty[i].outOfDistribution === true;
        predictions.push({
          label: refuse ? null : m.labels[index],
          ...(refuse ? { reason: "out_of_distribution" } : {}),
          index,
          confidence: out.probabilities[i * K + index],
          probabilities: numbers(out.probabilities, i * K, (i + 1) * K),
          latent: {
            space,
            mu: numbers(out.mu, i * L, (i + 1) * L),
            logvar: numbers(out.logvar, i * L, (i + 1) * L),
          },
          novelty: novelty[i],
        });
      }
      setModelHeaders(c, m);
      return c.json({ model: modelRef(m), latentSpace: space, predictions });
    });
  });

  app.post("/v1/latent", async (c) => {
    const mode = parsePreprocessMode(c.req.query("preprocess"));
    const samples = intParam(c, "samples", 0, config.maxSamples) ?? 0;
    const seedParam = intParam(c, "seed", 0, 0xffffffff);
    const batch = await readImageBatch(c.req.raw, limits, mode);
    return await withModel(async (m) => {
      const out = await m.encode(batch.images, batch.count);
      metrics.images.inc({ route: "/v1/latent" }, batch.count);
      const novelty = judgeNovelty(m, out, batch.images);
      const L = m.latentSize;
      // Echo the seed so any response can be reproduced, even when the client sent none.
      const seed = seedParam ?? Math.floor(Math.random() * 0x100000000);
      const normal = normalSource(seed);
      const latents = [];
      for (let i = 0; i < out.count; i++) {
        const mu = out.mu.subarray(i * L, (i + 1) * L),
          logvar = out.logvar.subarray(i * L, (i + 1) * L);
        const entry: {
          space: string;
          mu: number[];
          logvar: number[];
          novelty: NoveltyField;
          samples?: number[][];
        } = {
          space: spaceOf(m),
          mu: Array.from(mu),
          logvar: Array.from(logvar),
          novelty: novelty[i],
        };
        if (samples > 0) entry.samples = sampleLatent(mu, logvar, samples, normal);
        latents.push(entry);
      }
      setModelHeaders(c, m);
      const ref = { model: modelRef(m), latentSpace: spaceOf(m) };
      return c.json(samples > 0 ? { ...ref, seed, latents } : { ...ref, latents });
    });
  });

  const needDecoder = (m: LoadedModel) => {
    if (!m.hasDecoder) {
      throw new ApiError(
        501,
        "no_decoder",
        `Model ${m.name}@${m.version} was exported without a decoder`,
      );
    }
  };

  app.post("/v1/reconstruct", async (c) => {
    const image = await readOneImage(c.req.raw, limits, "/v1/reconstruct");
    return await withModel(async (m) => {
      needDecoder(m);
      const out = await m.encode(image, 1);
      metrics.images.inc({ route: "/v1/reconstruct" }, 1);
      const px = await m.decode(out.mu, 1);
      setModelHeaders(c, m);
      return pngResponse(c, px);
    });
  });

  app.post("/v1/decode", async (c) => {
    return await withModel(async (m) => {
      needDecoder(m);
      const z = await readLatent(c.req.raw, limits, m.latentSize);
      const px = await m.decode(z, 1);
      setModelHeaders(c, m);
      return pngResponse(c, px);
    });
  });

  app.get("/v1/models", async (c) => {
    const m = slot.current;
    if (!m) throw new ApiError(503, "not_ready", `No model is loaded: ${slot.reason}`);
    let versions: VersionInfo[] | { version: string; active: boolean; hasManifest: boolean }[];
    let source: string;
    if (config.bundle !== undefined) {
      source = "bundle";
      versions = [{ version: m.version, active: true, hasManifest: true }];
    } else {
      source = "registry";
      try {
        versions = deps.reloader
          ? await deps.reloader.source.versions(m.name) as typeof versions
          : await listVersions(config.registry, m.name);
      } catch {
        versions = []; // the registry may have moved since loading; the active model still serves
      }
    }
    const mf = m.manifest;
    setModelHeaders(c, m);
    return c.json({
      active: {
        name: m.name,
        version: m.version,
        created: mf.created,
        backend: m.backend,
        precision: m.precision,
        latentSize: m.latentSize,
        latentSpace: spaceOf(m),
        labels: m.labels,
        dataset: typeof mf.data.dataset === "string" ? mf.data.dataset : null,
        decoder: m.hasDecoder,
        metrics: mf.metrics,
        probe: m.probe,
        novelty: noveltyInfo(noveltyJudge(m, config.noveltyPercentile)),
        evaluation: await evaluationInfo(m),
      },
      source,
      versions: versions.map((v) => ({
        version: v.version,
        active: v.active,
        hasManifest: v.hasManifest,
      })),
      ...(deps.reloader ? reloadInfo(deps.reloader) : {}),
    });
  });

  // pid and uptime tell replicas sharing a port (--reuse-port) apart.
  const started = performance.now();
  app.get("/healthz", (c) =>
    c.json({
      status: "ok",
      pid: (globalThis as { Deno?: { pid: number } }).Deno?.pid ?? null,
      uptimeSeconds: Math.round((performance.now() - started) / 1000),
    }));

  app.get("/readyz", (c) => {
    const m = slot.current;
    if (!m) return c.json(errorBody("not_ready", `No model is loaded: ${slot.reason}`), 503);
    return c.json({ status: "ready", model: modelRef(m), backend: m.backend });
  });

  app.get("/metrics", async (c) => {
    const text = (deps.renderMetrics ? await deps.renderMetrics() : ownMetricsText(metrics, slot)) +
      (gallery.current?.metricsText() ?? "");
    return c.body(text, 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" });
  });

  const translator = deps.translator ??
    new Translator({ minNeighbours: config.translateMinNeighbours ?? 0.5 });
  const gallery = deps.gallery ??
    { current: null, reason: "the service was started without --gallery <file>" };
  const latentDeps = { slot, translator, limits, withModel, handle: gallery };
  app.route("/", latentRoutes(latentDeps));
  app.route("/", galleryRoutes(latentDeps));
  // One throttle for every admin route group: wrong tokens count alike wherever they are tried.
  const adminThrottle = deps.adminThrottle ?? new FailureThrottle();
  if (deps.adminToken) {
    app.use("/v1/admin/gallery/*", bearerAuth(deps.adminToken, adminThrottle));
    app.route("/v1/admin/gallery", galleryAdminRoutes(latentDeps));
  }

  // The admin API exists only with a token; without one, say how to enable it.
  if (deps.reloader && deps.adminToken) {
    app.route(
      "/v1/admin",
      adminRoutes({
        token: deps.adminToken,
        reloader: deps.reloader,
        throttle: adminThrottle,
      }),
    );
  } else {
    app.all("/v1/admin/*", () => {
      throw new ApiError(
        404,
        "admin_disabled",
        "The admin API is off; start the server with ADMIN_TOKEN or --admin-token-file set",
      );
    });
  }

  app.route("/v2", v2Routes({ slot, limits, metrics, log })); // Open Inference Protocol: serve/v2/
  app.get("/openapi.json", (c) => c.json(doc));
  app.get("/docs", (c) => c.html(renderDocs(doc, c.req.header("host") ?? "localhost:8000")));
  app.route("/", demoRoutes({ slot, limits, openApi: doc })); // the demo page: serve/demo/

  app.notFound((c) =>
    c.json(errorBody("not_found", `No route for ${c.req.method} ${c.req.path}; see /docs`), 404)
  );

  app.onError((err, c) => {
    if (err instanceof ApiError) {
      if (err.status === 408) c.header("Connection", "close"); // the rest of the body is not read
      return c.json(errorBody(err.code, err.message), err.status);
    }
    if (err instanceof HTTPException) {
      return c.json(errorBody("http_error", err.message || "request failed"), err.status);
    }
    log(`Unhandled error on ${c.req.method} ${c.req.path}:`, err);
    return c.json(errorBody("internal", "Internal error; the server log has the details"), 500);
  });

  return app;
}
