/**
 * The /v2 route definitions (createRoute): serve/v2/mod.ts routes by them and /openapi.json
 * documents them. Their payloads are the Open Inference Protocol's JSON Schemas of ./schemas.ts
 * (what the conformance tests check every response against), registered as components, so the
 * document and the tests read one description; the mapping to this model is in docs/v2.md.
 */
import { createRoute, type OpenAPIHono, type RouteConfig, z } from "@hono/zod-openapi";
import * as v2 from "./schemas.ts";

/** schemas.ts's payloads under their component names in the document. */
const PAYLOADS = {
  V2Error: v2.errorSchema,
  V2ServerMetadata: v2.serverMetadataSchema,
  V2ServerLive: v2.serverLiveSchema,
  V2ServerReady: v2.serverReadySchema,
  V2ModelReady: v2.modelReadySchema,
  V2ModelMetadata: v2.modelMetadataSchema,
  V2InferenceRequest: v2.inferenceRequestSchema,
  V2InferenceResponse: v2.inferenceResponseSchema,
  V2Parameters: v2.inferenceRequestSchema.definitions.parameters,
  V2TensorData: v2.inferenceRequestSchema.definitions.data,
};
type Payload = keyof typeof PAYLOADS;
const DEFINITIONS: Record<string, Payload> = { parameters: "V2Parameters", data: "V2TensorData" };

/**
 * A draft-07 schema as an OpenAPI component: its $id and definitions dropped, and its
 * `#/definitions/<x>` references pointed at the components that hold them.
 */
function asComponent(schema: object): Record<string, unknown> {
  const text = JSON.stringify(
    schema,
    (k, v) => (k === "$id" || k === "definitions" ? undefined : v),
  )
    .replace(
      /"#\/definitions\/(\w+)"/g,
      (_, d: string) => `"#/components/schemas/${DEFINITIONS[d]}"`,
    );
  return JSON.parse(text);
}

/** Registers the protocol's payloads as components of `app`'s document. */
export function registerV2Payloads(app: OpenAPIHono): void {
  for (const [name, schema] of Object.entries(PAYLOADS)) {
    app.openAPIRegistry.registerComponent("schemas", name, asComponent(schema) as never);
  }
}

const ref = (name: Payload) => ({ $ref: `#/components/schemas/${name}` });
const json = (description: string, name: Payload) => ({
  description,
  content: { "application/json": { schema: ref(name) } },
});
const v2Error = (description: string) => json(description, "V2Error");

const NAME = z.string().openapi({
  description: "The model name (the manifest's name, e.g. fashion-vae).",
});
const VERSION = z.string().openapi({
  description: "The loaded bundle version; any other is a 404.",
});
const modelParams = (versioned: boolean) =>
  versioned ? z.object({ name: NAME, version: VERSION }) : z.object({ name: NAME });
const modelPath = (versioned: boolean, tail: string) =>
  `/models/{name}${versioned ? "/versions/{version}" : ""}${tail}`;

const unknownModel = v2Error("Unknown model or version.");
const notReady = v2Error("No model is loaded yet.");

/** A V2 GET route; the model routes take the name (and version) from the path. */
function get(spec: {
  path: string;
  summary: string;
  description: string;
  params?: ReturnType<typeof modelParams>;
  responses: RouteConfig["responses"];
}) {
  const { params, ...rest } = spec;
  return createRoute({ method: "get", ...rest, ...(params ? { request: { params } } : {}) });
}

export const serverMetadataRoute = get({
  path: "/",
  summary: "Server metadata (Open Inference Protocol)",
  description: "name, version and extensions (binary_tensor_data, classification).",
  responses: { 200: json("$metadata_server_response", "V2ServerMetadata") },
});

export const serverLiveRoute = get({
  path: "/health/live",
  summary: "Server live",
  description: '{"live": true} while the process answers.',
  responses: { 200: json("$live_server_response", "V2ServerLive") },
});

export const serverReadyRoute = get({
  path: "/health/ready",
  summary: "Server ready",
  description: '{"ready": true} once a validated model is loaded.',
  responses: {
    200: json("$ready_server_response: ready", "V2ServerReady"),
    503: json('$ready_server_response: {"ready": false} until a model is loaded', "V2ServerReady"),
  },
});

export const modelMetadataRoute = (versioned: boolean) =>
  get({
    path: modelPath(versioned, ""),
    summary: "Model metadata (Open Inference Protocol)",
    description:
      "platform onnx_onnxv1; inputs and outputs with datatype and shape (-1 for the batch).",
    params: modelParams(versioned),
    responses: {
      200: json("$metadata_model_response", "V2ModelMetadata"),
      404: unknownModel,
      503: notReady,
    },
  });

export const modelReadyRoute = (versioned: boolean) =>
  get({
    path: modelPath(versioned, "/ready"),
    summary: "Model ready (Open Inference Protocol)",
    description: '{"name", "ready"}: 200 when this model is loaded, 503 while none is.',
    params: modelParams(versioned),
    responses: {
      200: json("$ready_model_response: ready", "V2ModelReady"),
      404: unknownModel,
      503: json('$ready_model_response: {"name", "ready": false} while none is', "V2ModelReady"),
    },
  });

/** The body is read by the handler (the binary extension splits it); this describes it. */
export function inferRoute(maxBatch: number, versioned: boolean) {
  return createRoute({
    method: "post",
    path: modelPath(versioned, "/infer"),
    summary: "Inference (Open Inference Protocol)",
    description:
      `$inference_request -> $inference_response. One input "image": FP32 [N,1,28,28] or ` +
      `[N,784] in [0, 1], UINT8 [N,784] pixels, or BYTES [N] PNG/JPEG (base64 in JSON); N <= ${maxBatch}. ` +
      `Outputs probabilities, mu, logvar (all, or those in "outputs"); the classification parameter ` +
      `gives top-k "value:index:label" strings. Binary tensor extension: Inference-Header-Content-Length ` +
      `and binary_data_size / binary_data / binary_data_output. Same predictions as /v1/classify.`,
    request: {
      params: modelParams(versioned),
      body: {
        required: true,
        content: {
          "application/json": { schema: ref("V2InferenceRequest") },
          "application/octet-stream": {
            schema: {
              type: "string",
              format: "binary",
              description: "JSON header (Inference-Header-Content-Length bytes), then raw tensors.",
            },
          },
        },
      },
    },
    responses: {
      200: {
        description: "$inference_response (binary extension: JSON header then raw outputs)",
        content: {
          "application/json": { schema: ref("V2InferenceResponse") },
          "application/octet-stream": {
            schema: {
              type: "string",
              format: "binary",
              description: "JSON header (Inference-Header-Content-Length bytes), then raw outputs.",
            },
          },
        },
      },
      400: v2Error("The request cannot be used (the message names the field)."),
      404: unknownModel,
      413: v2Error("Body or batch above the limits."),
      503: notReady,
    },
  });
}
