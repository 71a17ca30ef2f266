/**
 * What the /v1 route definitions share: the query parameters (zod schemas that both validate
 * and document, failing with the app's 400 bad_parameter), the raw image bodies (described as
 * plain JSON Schema, because serve/inputs.ts parses them by content type), the error responses,
 * and the dependencies every route module takes.
 */
import { createRoute, type OpenAPIHono, type RouteConfig, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { latentSpaceOf } from "../../bundle/mod.ts";
import type { AppConfig } from "../app.ts";
import { ApiError } from "../errors.ts";
import type { EncodeOutput, LoadedModel, ModelSlot } from "../inference/mod.ts";
import type { InputLimits } from "../inputs.ts";
import type { ServiceMetrics } from "../metrics.ts";
import type { NoveltyField } from "../novelty.ts";
import { ErrorSchema } from "./schemas.ts";

export interface RouteDeps {
  slot: ModelSlot;
  config: AppConfig;
  limits: InputLimits;
  metrics: ServiceMetrics;
  /** Runs fn with the current model pinned; an empty slot is a 503. */
  withModel: <T>(fn: (m: LoadedModel) => Promise<T>) => Promise<T>;
  /** The novelty of each encoded image, counted in /metrics under the model that judged it. */
  judgeNovelty: (m: LoadedModel, out: EncodeOutput, images: Float32Array) => NoveltyField[];
}

export type Api = OpenAPIHono;

/** A failed request-schema check as the app's error: the first issue's message names the field. */
export function validationHook(
  result: { success: boolean; error?: { issues: { message: string }[] } },
): void {
  if (!result.success) {
    throw new ApiError(400, "bad_parameter", result.error?.issues[0]?.message ?? "bad request");
  }
}

/** The parsed query a route's handler gets: its schema's output, or nothing without one. */
export type QueryOf<R extends RouteConfig> = R["request"] extends
  { query: infer Q extends z.ZodType } ? z.output<Q>
  : Record<string, never>;

/**
 * Registers a route: the document gets the route as defined (unless `document` is false, for a
 * route whose entry is registered apart from it), the handler gets the query checked with the
 * route's own schema. zod-openapi's validator middleware would add an async step to every
 * request, measurable at concurrency 1 (docs/performance.md), while a request without a query
 * string needs no check at all. Path parameters are the router's non-empty segments and bodies
 * are read by the handlers, whose errors say more than a schema's would (serve/inputs.ts).
 */
export function defineRoute<R extends RouteConfig>(
  app: Api,
  route: R,
  handler: (c: Context, query: QueryOf<R>) => Response | Promise<Response>,
  options: { document?: boolean } = {},
): void {
  if (options.document !== false) app.openAPIRegistry.registerPath(route);
  const schema = route.request?.query;
  const path = route.path.replace(/\{(\w+)\}/g, ":$1");
  if (!schema) {
    const none = {} as QueryOf<R>;
    app.on(route.method.toUpperCase(), path, (c) => handler(c, none));
    return;
  }
  const empty = schema.parse({}) as QueryOf<R>; // every parameter is optional
  app.on(route.method.toUpperCase(), path, (c) => {
    if (!c.req.url.includes("?")) return handler(c, empty);
    const result = schema.safeParse(c.req.query());
    validationHook(result);
    return handler(c, result.data as QueryOf<R>);
  });
}

export const err = (description: string) => ({
  description,
  content: { "application/json": { schema: ErrorSchema } },
});

export const pngAnswer = {
  description: "28x28 grey PNG. Headers X-Model-Name / X-Model-Version name the model.",
  content: { "image/png": { schema: { type: "string" as const, format: "binary" } } },
};

const emptyQuery = (raw: string | undefined) => raw === undefined || raw === "";

export const preprocessQuery = z.string().optional().refine(
  (raw) => emptyQuery(raw) || raw === "auto" || raw === "none",
  { error: (iss) => `preprocess must be "auto" or "none", got ${JSON.stringify(iss.input)}` },
).openapi({
  type: "string",
  enum: ["auto", "none"],
  default: "auto",
  description:
    "auto: photos are trimmed, fitted to 28x28 and inverted when the background is light " +
    "(the dataset authors' recipe); 28x28 grey images pass unchanged. none: images must be 28x28 already.",
} as never);

export const abstainQuery = z.string().optional().refine(
  (raw) => emptyQuery(raw) || ["true", "false", "1", "0"].includes(raw!),
  { error: (iss) => `abstain must be true or false, got ${JSON.stringify(iss.input)}` },
).openapi({
  type: "boolean",
  default: false,
  description:
    'true: a prediction whose image is out of distribution gets label null and reason "out_of_distribution" (probabilities stay). Never abstains when the model has no novelty calibration.',
} as never);

/** An optional integer query parameter in min..max (digits only, as the message says). */
export function intQuery(name: string, min: number, max: number, doc: Record<string, unknown>) {
  return z.string().optional().refine(
    (raw) =>
      emptyQuery(raw) ||
      (/^\d+$/.test(raw!) && Number.isSafeInteger(Number(raw)) && Number(raw) >= min &&
        Number(raw) <= max),
    {
      error: (iss) =>
        `${name} must be an integer in ${min}..${max}, got ${JSON.stringify(iss.input)}`,
    },
  ).openapi({ type: "integer", minimum: min, maximum: max, ...doc } as never);
}

/** A validated integer query value, or undefined when absent. */
export const intValue = (raw: string | undefined) => emptyQuery(raw) ? undefined : Number(raw);

/** The preprocess mode of a validated ?preprocess= value. */
export const modeOf = (raw: string | undefined) =>
  raw === "none" ? "none" as const : "auto" as const;

const binary = (description: string) => ({
  schema: { type: "string" as const, format: "binary", description },
});

/** The part of JSON Schema the hand-parsed JSON bodies are described with. */
export interface JsonField {
  type?: "string" | "number" | "integer" | "boolean" | "array" | "object";
  description?: string;
  items?: JsonField;
  properties?: Record<string, JsonField>;
  required?: string[];
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  contentEncoding?: string;
}

/**
 * A required JSON object body that the handler parses itself (serve/inputs.ts and kin name the
 * bad field better than a schema check would), described by its required and known fields.
 */
export function jsonObjectBody(required: string[], properties: Record<string, JsonField>) {
  const schema: JsonField = { type: "object", required, properties };
  return { required: true, content: { "application/json": { schema } } };
}

const IMAGE_JSON = { $ref: "#/components/schemas/ImageJson" };

/**
 * The image bodies of /v1/classify and kin: parsed by serve/inputs.ts, described here. `json`
 * replaces the JSON body's schema for a route that takes more than images as JSON.
 */
export function imageInputBody<J extends object = typeof IMAGE_JSON>(
  limits: InputLimits,
  single: boolean,
  json: J = IMAGE_JSON as J,
) {
  const many = single ? "one image" : `1 to ${limits.maxBatch} images`;
  return {
    required: true,
    description:
      `${many}. Bodies above ${limits.maxBodyBytes} bytes get 413; images declaring more than ` +
      `${limits.maxPixels} pixels (alone or summed over the request) get 413 before decoding.`,
    content: {
      "image/png": binary("One PNG (grey, grey+alpha, RGB, RGBA, palette; 1-16 bit)."),
      "image/jpeg": binary("One baseline or progressive 8-bit JPEG."),
      "application/octet-stream": binary(
        "N x 784 uint8 pixels, Fashion-MNIST layout (28x28 row-major, object light on dark).",
      ),
      "application/json": { schema: json },
      "multipart/form-data": {
        schema: {
          type: "object" as const,
          additionalProperties: { type: "string" as const, format: "binary" },
          description: "One or more file parts, each a PNG or JPEG; other fields are ignored.",
        },
      },
    },
  };
}

export function inputErrors(limits: InputLimits) {
  return {
    400: err("Body does not parse: bad JSON, bad base64, undecodable image, empty batch."),
    408: err("The body did not arrive in time (--body-timeout-ms)."),
    413: err(
      `Body above ${limits.maxBodyBytes} bytes, image above ${limits.maxPixels} pixels or ${
        limits.maxDecodedBytes ?? "the limit of"
      } decoded bytes (bit depth and channels counted), or more than ${limits.maxBatch} images.`,
    ),
    415: err("Content-Type not supported (or an image format other than PNG/JPEG)."),
    422: err("Well-formed but wrong: pixel count not 784, values outside 0..255 or non-finite."),
    503: err(
      "No validated model is loaded, the server is shutting down, or it is at its in-flight cap.",
    ),
  };
}

/**
 * A POST route taking the image bodies of /v1/classify (parsed by serve/inputs.ts), with their
 * error responses; `single` routes take one image.
 */
export function imageRoute<Q extends z.ZodObject, J extends object = typeof IMAGE_JSON>(
  limits: InputLimits,
  spec: {
    path: string;
    summary: string;
    description?: string;
    query: Q;
    single: boolean;
    ok: RouteConfig["responses"][number];
    more?: RouteConfig["responses"];
    json?: J;
  },
) {
  return createRoute({
    method: "post",
    path: spec.path,
    summary: spec.summary,
    description: spec.description,
    request: { query: spec.query, body: imageInputBody(limits, spec.single, spec.json) },
    responses: { 200: spec.ok, ...inputErrors(limits), ...spec.more },
  });
}

export function modelRef(m: LoadedModel) {
  return { name: m.name, version: m.version };
}

export function setModelHeaders(c: Context, m: LoadedModel): void {
  c.header("X-Model-Name", m.name);
  c.header("X-Model-Version", m.version);
  c.header("X-Latent-Space", latentSpaceOf(m.manifest));
}
