/**
 * The HTTP API as a Hono app built from its dependencies (createApp({slot, config, metrics})),
 * so tests drive it with app.request() and the entries only add a server (serve/service.ts).
 * Each model request pins the current model for its whole life (slot.use), so a hot swap never
 * mixes versions within a response, and names the version that answered in the body and
 * X-Model-Version.
 * Every route comes from a createRoute definition (@hono/zod-openapi): /v1 in serve/routes/,
 * /v2 in serve/v2/openapi.ts, latents and the gallery in serve/latents/openapi.ts, the demo in
 * serve/demo/openapi.ts; so routing, query validation and /openapi.json come from one
 * definition. Errors: handlers throw ApiError, failed schema checks become ApiError 400
 * (validationHook); the one onError
 * below renders {"error": {code, message}} and logs anything unexpected as a 500.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { ServeConfig } from "./config.ts";
import { demoRoutes } from "./demo/mod.ts";
import { ApiError, errorBody } from "./errors.ts";
import type { EncodeOutput, LoadedModel, ModelSlot } from "./inference/mod.ts";
import { NoModelError } from "./inference/slot.ts";
import type { InputLimits } from "./inputs.ts";
import { routeLabel, ServiceMetrics } from "./metrics.ts";
import { adminRoutes, bearerAuth } from "./admin.ts";
import type { Admission } from "./admission.ts";
import type { DecodePool } from "./decode_pool.ts";
import { FailureThrottle } from "./auth_throttle.ts";
import type { Reloader } from "./reload.ts";
import { v2Routes } from "./v2/mod.ts";
import { noveltyFields, noveltyJudge } from "./novelty.ts";
import { latentRoutes } from "./latents/routes.ts";
import { Translator } from "./latents/translate.ts";
import {
  documentGalleryAdmin,
  galleryAdminRoutes,
  type GalleryHandle,
  type GalleryRouteDeps,
  galleryRoutes,
} from "./gallery/routes.ts";
import { documentAdmin } from "./routes/admin_doc.ts";
import { docRoutes } from "./routes/api_doc.ts";
import { classifyRoutes } from "./routes/classify.ts";
import { type RouteDeps, validationHook } from "./routes/common.ts";
import { healthRoutes } from "./routes/health.ts";
import { imageRoutes } from "./routes/images.ts";
import { modelRoutes } from "./routes/models.ts";
import type { Traffic } from "./traffic/traffic.ts";

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
  /** Canary routing and shadow traffic (serve/traffic/); without it every request is primary. */
  traffic?: Traffic;
}

/** This process's metrics in the exposition format, with the active model filled in. */
export function ownMetricsText(metrics: ServiceMetrics, slot: ModelSlot): string {
  const m = slot.current;
  metrics.setActive(m ? { name: m.name, version: m.version, backend: m.backend } : null);
  return metrics.render();
}

/**
 * Routes with a fixed label for metrics (routeLabel() adds the /v2 templates; the rest is
 * "other"). Exported so the route test checks them against what the app registers.
 */
export const LABELLED_ROUTES = [
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

/**
 * Runs fn with the model a request goes to pinned (through the traffic selection, the canary's
 * for its share of keys); an empty slot is a 503, not a crash.
 */
function pinning(pin: Pick<ModelSlot, "use">) {
  return <T>(fn: (m: LoadedModel) => Promise<T>): Promise<T> =>
    pin.use(fn).catch((e): Promise<T> => {
      if (e instanceof NoModelError) throw new ApiError(503, "not_ready", e.message);
      throw e;
    });
}

/** /v1/admin: the admin route groups behind one bearer check, or a 404 saying how to enable them. */
function mountAdmin(app: OpenAPIHono, deps: AppDeps, latentDeps: GalleryRouteDeps): void {
  // One throttle for every admin route group: wrong tokens count alike wherever they are tried.
  const adminThrottle = deps.adminThrottle ?? new FailureThrottle();
  documentGalleryAdmin(app); // listed always: the document says how to enable it
  if (deps.adminToken) {
    app.use("/v1/admin/gallery/*", bearerAuth(deps.adminToken, adminThrottle));
    galleryAdminRoutes(app, latentDeps);
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
}

/** The one rendering of errors: {"error": {code, message}}; anything unexpected is a logged 500. */
function handleErrors(app: OpenAPIHono, log: (message: string, error?: unknown) => void): void {
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
}

export function createApp(deps: AppDeps): OpenAPIHono {
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
  const app = new OpenAPIHono({ defaultHook: validationHook });

  // Counts and times every request, and names the active model on responses that did not
  // already name the model that produced them.
  app.use("*", async (c, next) => {
    const start = performance.now();
    await next();
    const route = routeLabel(c.req.path, LABELLED_ROUTES);
    metrics.requests.inc({ route, method: c.req.method, status: String(c.res.status) });
    metrics.latency.observe((performance.now() - start) / 1000, { route });
    const active = slot.current;
    if (active && !c.res.headers.has("X-Model-Version")) {
      c.res.headers.set("X-Model-Name", active.name);
      c.res.headers.set("X-Model-Version", active.version);
    }
  });

  if (deps.admission) app.use("*", deps.admission.middleware());
  if (deps.traffic) app.use("*", deps.traffic.middleware());
  const withModel = pinning(deps.traffic ?? slot);

  // The novelty of each encoded image, counted in /metrics under the model that judged it.
  const judgeNovelty = (m: LoadedModel, out: EncodeOutput, images: Float32Array) => {
    const fields = noveltyFields(noveltyJudge(m, config.noveltyPercentile), out, images);
    metrics.observeNovelty(m, fields);
    return fields;
  };

  const routeDeps: RouteDeps = { slot, config, limits, metrics, withModel, judgeNovelty };
  classifyRoutes(app, routeDeps);
  imageRoutes(app, routeDeps);
  modelRoutes(app, routeDeps, deps.reloader, deps.traffic);
  healthRoutes(
    app,
    routeDeps,
    async () =>
      (deps.renderMetrics ? await deps.renderMetrics() : ownMetricsText(metrics, slot)) +
      (gallery.current?.metricsText() ?? ""),
  );

  const translator = deps.translator ??
    new Translator({ minNeighbours: config.translateMinNeighbours ?? 0.5 });
  const gallery = deps.gallery ??
    { current: null, reason: "the service was started without --gallery <file>" };
  // Latents and the gallery stay on the primary: the gallery is indexed in its latent space.
  const latentDeps = { slot, translator, limits, withModel: pinning(slot), handle: gallery };
  latentRoutes(app, latentDeps);
  galleryRoutes(app, latentDeps);
  mountAdmin(app, deps, latentDeps);

  // Open Inference Protocol: serve/v2/ (routed through the canary like /v1)
  app.route("/v2", v2Routes({ slot, limits, metrics, log, traffic: deps.traffic }));
  documentAdmin(app);
  docRoutes(app, limits); // /openapi.json and /docs, generated from the routes' definitions
  app.route("/", demoRoutes({ slot, limits })); // the demo page: serve/demo/

  handleErrors(app, log);
  return app;
}
