/**
 * The /v2 routes' entries in /openapi.json and /docs (serve/openapi.ts merges them). Their
 * payloads are the Open Inference Protocol's, whose JSON Schemas live in ./schemas.ts and whose
 * mapping to this model is in docs/v2.md; here each route says what it answers and when.
 */
type Json = Record<string, unknown>;

const v2Error = (description: string): Json => ({
  description,
  content: {
    "application/json": {
      schema: { type: "object", required: ["error"], properties: { error: { type: "string" } } },
    },
  },
});

const json = (description: string, schema: Json): Json => ({
  description,
  content: { "application/json": { schema } },
});

const name: Json = {
  name: "name",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "The model name (the manifest's name, e.g. fashion-vae).",
};
const version: Json = {
  name: "version",
  in: "path",
  required: true,
  schema: { type: "string" },
  description: "The loaded bundle version; any other is a 404.",
};

function infer(maxBatch: number, versioned: boolean): Json {
  return {
    post: {
      summary: "Inference (Open Inference Protocol)",
      description:
        `$inference_request -> $inference_response. One input "image": FP32 [N,1,28,28] or ` +
        `[N,784] in [0, 1], UINT8 [N,784] pixels, or BYTES [N] PNG/JPEG (base64 in JSON); N <= ${maxBatch}. ` +
        `Outputs probabilities, mu, logvar (all, or those in "outputs"); the classification parameter ` +
        `gives top-k "value:index:label" strings. Binary tensor extension: Inference-Header-Content-Length ` +
        `and binary_data_size / binary_data / binary_data_output. Same predictions as /v1/classify.`,
      parameters: versioned ? [name, version] : [name],
      requestBody: {
        required: true,
        content: {
          "application/json": { schema: { type: "object", description: "$inference_request" } },
          "application/octet-stream": {
            schema: {
              type: "string",
              format: "binary",
              description: "JSON header (Inference-Header-Content-Length bytes), then raw tensors.",
            },
          },
        },
      },
      responses: {
        "200": json("$inference_response (binary extension: JSON header then raw outputs)", {
          type: "object",
          required: ["model_name", "outputs"],
        }),
        "400": v2Error("The request cannot be used (the message names the field)."),
        "404": v2Error("Unknown model or version."),
        "413": v2Error("Body or batch above the limits."),
        "503": v2Error("No model is loaded yet."),
      },
    },
  };
}

function get(summary: string, description: string, params: Json[], ok: Json): Json {
  return {
    get: {
      summary,
      description,
      parameters: params,
      responses: {
        "200": ok,
        "404": v2Error("Unknown model or version."),
        "503": v2Error("No model is loaded yet."),
      },
    },
  };
}

export function v2OpenApiPaths(maxBatch: number): Json {
  const metadata = (params: Json[]) =>
    get(
      "Model metadata (Open Inference Protocol)",
      "platform onnx_onnxv1; inputs and outputs with datatype and shape (-1 for the batch).",
      params,
      json("$metadata_model_response", { type: "object", required: ["name", "platform"] }),
    );
  const ready = (params: Json[]) =>
    get(
      "Model ready (Open Inference Protocol)",
      '{"name", "ready"}: 200 when this model is loaded, 503 while none is.',
      params,
      json("$ready_model_response", { type: "object", required: ["name", "ready"] }),
    );
  return {
    "/v2": get(
      "Server metadata (Open Inference Protocol)",
      "name, version and extensions (binary_tensor_data, classification).",
      [],
      json("$metadata_server_response", { type: "object", required: ["name", "extensions"] }),
    ),
    "/v2/health/live": get(
      "Server live",
      '{"live": true} while the process answers.',
      [],
      json("$live_server_response", { type: "object" }),
    ),
    "/v2/health/ready": get(
      "Server ready",
      '{"ready": true} (200) once a validated model is loaded; {"ready": false} (503) until then.',
      [],
      json("$ready_server_response", { type: "object" }),
    ),
    "/v2/models/{name}": metadata([name]),
    "/v2/models/{name}/versions/{version}": metadata([name, version]),
    "/v2/models/{name}/ready": ready([name]),
    "/v2/models/{name}/versions/{version}/ready": ready([name, version]),
    "/v2/models/{name}/infer": infer(maxBatch, false),
    "/v2/models/{name}/versions/{version}/infer": infer(maxBatch, true),
  };
}
