/**
 * The Open Inference Protocol V2 (KServe V2 / Triton HTTP/REST) beside /v1, as one Hono app
 * that serve/app.ts mounts at /v2: server metadata and health, model metadata and readiness,
 * and inference, with the binary tensor data and classification extensions. It answers from
 * the same model slot, batching runner, preprocessing and manifest labels as /v1, so a V2
 * prediction is the /v1 prediction for the same pixels. Only the loaded version is served: a
 * request naming another model or version is a 404, an empty slot a 503. Each route comes from
 * its definition in ./openapi.ts, which /openapi.json documents.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import pkg from "../../package.json" with { type: "json" };
import type { Dim, TensorSpec } from "../../bundle/mod.ts";
import type { LoadedModel } from "../inference/model.ts";
import type { ModelSlot } from "../inference/slot.ts";
import { type InputLimits, readBody } from "../inputs.ts";
import type { ServiceMetrics } from "../metrics.ts";
import { HEADER_LENGTH, splitBody } from "./binary.ts";
import { V2Error, v2Failure } from "./errors.ts";
import { parseInferRequest } from "./request.ts";
import { buildResponse, encodeResponse, modelOutputs } from "./response.ts";
import { defineRoute } from "../routes/common.ts";
import {
  inferRoute,
  modelMetadataRoute,
  modelReadyRoute,
  registerV2Payloads,
  serverLiveRoute,
  serverMetadataRoute,
  serverReadyRoute,
} from "./openapi.ts";

export const EXTENSIONS = ["binary_tensor_data", "classification"];

export interface V2Deps {
  slot: ModelSlot;
  /** Canary routing (serve/traffic/traffic.ts): unversioned requests take its choice. */
  traffic?: {
    use<T>(fn: (m: LoadedModel) => Promise<T>): Promise<T>;
    useVersion<T>(version: string, fn: (m: LoadedModel) => Promise<T>): Promise<T>;
  };
  limits: InputLimits;
  metrics?: ServiceMetrics;
  log?: (message: string, error?: unknown) => void;
}

function datatype(dtype: string): string {
  if (dtype === "float32") return "FP32";
  throw new Error(`no V2 datatype for manifest dtype ${dtype}`);
}

function metadataTensor(t: TensorSpec) {
  return {
    name: t.name,
    datatype: datatype(t.dtype),
    shape: t.shape.map((d: Dim) => (d === "N" ? -1 : d)),
  };
}

/** The loaded model, if it is the one the path names; 404 otherwise, 503 with none loaded. */
function pick(m: LoadedModel | null, slot: ModelSlot, name: string, version?: string): LoadedModel {
  if (!m) throw new V2Error(503, `Model "${name}" is not ready: ${slot.reason}`);
  if (name !== m.name) {
    throw new V2Error(404, `Unknown model "${name}"; this server serves "${m.name}"`);
  }
  if (version !== undefined && version !== m.version) {
    throw new V2Error(
      404,
      `Model "${name}" has no loaded version "${version}"; the loaded version is "${m.version}"`,
    );
  }
  return m;
}

function metadata(m: LoadedModel) {
  const o = m.manifest.outputs;
  return {
    name: m.name,
    versions: [m.version],
    platform: "onnx_onnxv1",
    inputs: [metadataTensor(m.manifest.input)],
    outputs: [o.probabilities, o.mu, o.logvar].map(metadataTensor),
  };
}

/** POST .../infer: the body is read here, not by a schema (the binary extension splits it). */
async function infer(c: Context, deps: V2Deps): Promise<Response> {
  const { slot, limits } = deps;
  const { name, version } = c.req.param();
  pick(slot.current, slot, name, deps.traffic ? undefined : version); // fail fast, before the body
  const body = await readBody(c.req.raw, limits.maxBodyBytes);
  const { json, binary } = splitBody(body, c.req.header(HEADER_LENGTH) ?? null);
  const t = deps.traffic;
  const use = <T>(fn: (m: LoadedModel) => Promise<T>) =>
    t ? (version === undefined ? t.use(fn) : t.useVersion(version, fn)) : slot.use(fn);
  return await use(async (m) => {
    pick(m, slot, name, version); // the pinned model, which a swap may have changed
    const io = {
      input: m.manifest.input.name,
      outputs: modelOutputs(m).map((o) => o.name),
      classes: m.labels.length,
    };
    const req = parseInferRequest(json, binary, io, limits);
    const out = await m.encode(req.batch.images, req.batch.count);
    deps.metrics?.images.inc({ route: "/v2/infer" }, req.batch.count);
    return encodeResponse(buildResponse(m, req, out));
  });
}

export function v2Routes(deps: V2Deps): OpenAPIHono {
  const { slot, limits } = deps;
  const log = deps.log ?? ((msg: string, e?: unknown) => console.error(msg, e ?? ""));
  const app = new OpenAPIHono();
  registerV2Payloads(app);

  defineRoute(
    app,
    serverMetadataRoute,
    (c) => c.json({ name: pkg.name, version: pkg.version, extensions: EXTENSIONS }),
  );
  defineRoute(app, serverLiveRoute, (c) => c.json({ live: true }));
  defineRoute(
    app,
    serverReadyRoute,
    (c) => c.json({ ready: slot.current !== null }, slot.current ? 200 : 503),
  );

  for (const versioned of [false, true]) {
    defineRoute(app, modelMetadataRoute(versioned), (c) => {
      const { name, version } = c.req.param();
      return c.json(metadata(pick(slot.current, slot, name, version)));
    });
    defineRoute(app, modelReadyRoute(versioned), (c) => {
      const { name, version } = c.req.param();
      if (!slot.current) return c.json({ name, ready: false }, 503);
      pick(slot.current, slot, name, version);
      return c.json({ name, ready: true });
    });
    defineRoute(app, inferRoute(limits.maxBatch, versioned), (c) => infer(c, deps));
  }

  // Inside /v2 every unknown path is a V2 error too (the parent's notFound is /v1's shape).
  app.all("*", (c) => c.json({ error: `No V2 route for ${c.req.method} ${c.req.path}` }, 404));

  app.onError((err, c) => {
    const f = v2Failure(err);
    if (f) return c.json({ error: f.message }, f.status);
    log(`Unhandled error on ${c.req.method} ${c.req.path}:`, err);
    return c.json({ error: "Internal error; the server log has the details" }, 500);
  });
  return app;
}
