/**
 * The OpenAPI 3.1 description of every endpoint, built from the live limits so the document
 * states the numbers the server enforces. /openapi.json serves it; /docs renders it as HTML
 * (docs.ts). Written by hand, next to the routes in app.ts: a test checks that every route
 * the app registers is documented here.
 */
import type { InputLimits } from "./inputs.ts";
import { abstainParam, noveltyMetricsDoc, noveltySchemas } from "./openapi_novelty.ts";
import { v2OpenApiPaths } from "./v2/openapi.ts";
import { latentPaths } from "./latents/openapi.ts";

type Json = Record<string, unknown>;

const errorResponse = (description: string): Json => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});

function imageInputBody(limits: InputLimits, single: boolean): Json {
  const many = single ? "one image" : `1 to ${limits.maxBatch} images`;
  return {
    required: true,
    description:
      `${many}. Bodies above ${limits.maxBodyBytes} bytes get 413; images declaring more than ` +
      `${limits.maxPixels} pixels (alone or summed over the request) get 413 before decoding.`,
    content: {
      "image/png": {
        schema: {
          type: "string",
          format: "binary",
          description: "One PNG (grey, grey+alpha, RGB, RGBA, palette; 1-16 bit).",
        },
      },
      "image/jpeg": {
        schema: {
          type: "string",
          format: "binary",
          description: "One baseline or progressive 8-bit JPEG.",
        },
      },
      "application/octet-stream": {
        schema: {
          type: "string",
          format: "binary",
          description:
            "N x 784 uint8 pixels, Fashion-MNIST layout (28x28 row-major, object light on dark).",
        },
      },
      "application/json": { schema: { $ref: "#/components/schemas/ImageJson" } },
      "multipart/form-data": {
        schema: {
          type: "object",
          additionalProperties: { type: "string", format: "binary" },
          description: "One or more file parts, each a PNG or JPEG; other fields are ignored.",
        },
      },
    },
  };
}

const preprocessParam: Json = {
  name: "preprocess",
  in: "query",
  required: false,
  schema: { type: "string", enum: ["auto", "none"], default: "auto" },
  description:
    "auto: photos are trimmed, fitted to 28x28 and inverted when the background is light " +
    "(the dataset authors' recipe); 28x28 grey images pass unchanged. none: images must be 28x28 already.",
};

const inputErrors = (limits: InputLimits): Json => ({
  "400": errorResponse(
    "Body does not parse: bad JSON, bad base64, undecodable image, empty batch.",
  ),
  "408": errorResponse("The body did not arrive in time (--body-timeout-ms)."),
  "413": errorResponse(
    `Body above ${limits.maxBodyBytes} bytes, image above ${limits.maxPixels} pixels or ${
      limits.maxDecodedBytes ?? "the limit of"
    } decoded bytes (bit depth and channels counted), or more than ${limits.maxBatch} images.`,
  ),
  "415": errorResponse("Content-Type not supported (or an image format other than PNG/JPEG)."),
  "422": errorResponse(
    "Well-formed but wrong: pixel count not 784, values outside 0..255 or non-finite.",
  ),
  "503": errorResponse(
    "No validated model is loaded, the server is shutting down, or it is at its in-flight cap.",
  ),
});

const pngResponse: Json = {
  description: "28x28 grey PNG. Headers X-Model-Name / X-Model-Version name the model.",
  content: { "image/png": { schema: { type: "string", format: "binary" } } },
};

export function openApiDoc(limits: InputLimits & { maxSamples: number }): Json {
  return {
    openapi: "3.1.0",
    info: {
      title: "latent-edge",
      version: "1",
      description:
        "A convolutional VAE trained on a labelled image set (Fashion-MNIST by default; the class " +
        "names come from the active bundle, GET /v1/models): classify images, read their latent " +
        "codes, reconstruct and decode. Every model response carries the model name and version (body and " +
        'X-Model-Version header). Errors are JSON: {"error": {"code", "message"}}.',
    },
    paths: {
      "/v1/classify": {
        post: {
          summary: "Classify images",
          description:
            "Predicted label, confidence, the probabilities of all classes, the latent code and the novelty of the image, per image in input order.",
          parameters: [preprocessParam, abstainParam],
          requestBody: imageInputBody(limits, false),
          responses: {
            "200": {
              description: "Predictions",
              content: {
                "application/json": { schema: { $ref: "#/components/schemas/ClassifyResponse" } },
              },
            },
            ...inputErrors(limits),
          },
        },
      },
      "/v1/latent": {
        post: {
          summary: "Latent codes of images",
          parameters: [
            preprocessParam,
            {
              name: "samples",
              in: "query",
              required: false,
              schema: { type: "integer", minimum: 0, maximum: limits.maxSamples, default: 0 },
              description: "Reparameterised samples z = mu + exp(logvar/2) * eps per image.",
            },
            {
              name: "seed",
              in: "query",
              required: false,
              schema: { type: "integer", minimum: 0, maximum: 4294967295 },
              description: "Seed for the samples; the response echoes the seed used.",
            },
          ],
          requestBody: imageInputBody(limits, false),
          responses: {
            "200": {
              description: "Latent codes",
              content: {
                "application/json": { schema: { $ref: "#/components/schemas/LatentResponse" } },
              },
            },
            ...inputErrors(limits),
          },
        },
      },
      "/v1/reconstruct": {
        post: {
          summary: "Reconstruct one image through the VAE",
          description:
            "Encodes the image and decodes its mean latent code with the same bundle's decoder.",
          parameters: [preprocessParam],
          requestBody: imageInputBody(limits, true),
          responses: {
            "200": pngResponse,
            ...inputErrors(limits),
            "501": errorResponse("The bundle has no decoder."),
          },
        },
      },
      "/v1/decode": {
        post: {
          summary: "Decode a latent vector to an image",
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["latent"],
                  properties: {
                    latent: {
                      type: "array",
                      items: { type: "number" },
                      description: "Exactly latentSize numbers (see /v1/models).",
                    },
                  },
                },
              },
            },
          },
          responses: {
            "200": pngResponse,
            "400": errorResponse('Not JSON or not {"latent": [...]}.'),
            "415": errorResponse("Not application/json."),
            "422": errorResponse("Wrong latent length or non-finite values."),
            "501": errorResponse("The bundle has no decoder."),
            "503": errorResponse("No validated model is loaded."),
          },
        },
      },
      "/v1/models": {
        get: {
          summary: "The active model and the versions available",
          responses: {
            "200": {
              description: "Manifest summary of the active bundle and the registry's versions",
              content: {
                "application/json": { schema: { $ref: "#/components/schemas/ModelsResponse" } },
              },
            },
            "503": errorResponse("No validated model is loaded."),
          },
        },
      },
      "/v1/admin/reload": {
        post: {
          summary: "Re-read the registry and hot-swap to its CURRENT version (admin token needed)",
          description:
            "Enabled only when the server has an admin token (ADMIN_TOKEN or --admin-token-file); " +
            "requires `Authorization: Bearer <token>`. The new bundle is validated beside the " +
            "old one; a bad bundle is rejected and the old one keeps serving.",
          responses: {
            "200": {
              description: "Reload status: active version, last error",
              content: { "application/json": {} },
            },
            "401": errorResponse("No bearer token."),
            "403": errorResponse("Wrong token."),
            "404": errorResponse("The admin API is disabled (no token configured)."),
            "422": errorResponse("The new bundle failed validation; the active one keeps serving."),
            "429": errorResponse("Too many wrong tokens from this client; see Retry-After."),
          },
        },
      },
      "/v1/admin/models/{version}/activate": {
        post: {
          summary:
            "Validate a registry version, then make it CURRENT and serve it (admin token needed)",
          parameters: [{ name: "version", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": { description: "Activated", content: { "application/json": {} } },
            "401": errorResponse("No bearer token."),
            "403": errorResponse("Wrong token."),
            "404": errorResponse("No such version, or the admin API is disabled."),
            "409": errorResponse(
              "The registry is read-only (an HTTP registry): activate on the publisher.",
            ),
            "422": errorResponse("The version failed validation; the active one keeps serving."),
            "429": errorResponse("Too many wrong tokens from this client; see Retry-After."),
          },
        },
      },
      "/healthz": {
        get: {
          summary: "Liveness: the process answers",
          responses: { "200": { description: "ok", content: { "application/json": {} } } },
        },
      },
      "/readyz": {
        get: {
          summary: "Readiness: a validated model is loaded",
          responses: {
            "200": { description: "ready", content: { "application/json": {} } },
            "503": errorResponse("No model; the message says why."),
          },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          description:
            'Requests and latency per route; per graph: batch size, requests per run, queue wait, run time as the batcher sees it and time computing (inference_*); the active model and swaps. Under --replicas every replica\'s samples, each labelled replica="<pid>".' +
            noveltyMetricsDoc,
          responses: {
            "200": { description: "Text exposition format 0.0.4", content: { "text/plain": {} } },
          },
        },
      },
      "/openapi.json": {
        get: {
          summary: "This document",
          responses: { "200": { description: "OpenAPI 3.1", content: { "application/json": {} } } },
        },
      },
      ...v2OpenApiPaths(limits.maxBatch), // serve/v2/openapi.ts
      "/docs": {
        get: {
          summary: "Human-readable API documentation",
          responses: { "200": { description: "HTML", content: { "text/html": {} } } },
        },
      },
      ...latentPaths(),
    },
    components: {
      schemas: {
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: {
              type: "object",
              required: ["code", "message"],
              properties: { code: { type: "string" }, message: { type: "string" } },
            },
          },
        },
        ModelRef: {
          type: "object",
          required: ["name", "version"],
          properties: { name: { type: "string" }, version: { type: "string" } },
        },
        ImageJson: {
          oneOf: [
            {
              type: "object",
              required: ["pixels"],
              properties: {
                pixels: {
                  type: "array",
                  maxItems: limits.maxBatch,
                  items: {
                    type: "array",
                    minItems: 784,
                    maxItems: 784,
                    items: { type: "number", minimum: 0, maximum: 255 },
                  },
                },
              },
            },
            {
              type: "object",
              required: ["images"],
              properties: {
                images: {
                  type: "array",
                  maxItems: limits.maxBatch,
                  items: {
                    type: "string",
                    contentEncoding: "base64",
                    description: "PNG or JPEG bytes (a data: URL prefix is accepted)",
                  },
                },
              },
            },
          ],
        },
        Latent: {
          type: "object",
          required: ["space", "mu", "logvar"],
          properties: {
            space: { type: "string", description: "latent space id (POST /v1/latent/translate)" },
            mu: { type: "array", items: { type: "number" } },
            logvar: { type: "array", items: { type: "number" } },
            samples: { type: "array", items: { type: "array", items: { type: "number" } } },
            novelty: { $ref: "#/components/schemas/Novelty" },
          },
        },
        ...noveltySchemas,
        ClassifyResponse: {
          type: "object",
          required: ["model", "predictions"],
          properties: {
            model: { $ref: "#/components/schemas/ModelRef" },
            predictions: {
              type: "array",
              items: {
                type: "object",
                required: ["label", "index", "confidence", "probabilities", "latent", "novelty"],
                properties: {
                  label: { type: ["string", "null"], description: "null when abstaining" },
                  reason: { type: "string", enum: ["out_of_distribution"] },
                  index: { type: "integer" },
                  confidence: { type: "number" },
                  probabilities: { type: "array", items: { type: "number" } },
                  latent: { $ref: "#/components/schemas/Latent" },
                  novelty: { $ref: "#/components/schemas/Novelty" },
                },
              },
            },
          },
        },
        LatentResponse: {
          type: "object",
          required: ["model", "latents"],
          properties: {
            model: { $ref: "#/components/schemas/ModelRef" },
            seed: { type: "integer" },
            latents: { type: "array", items: { $ref: "#/components/schemas/Latent" } },
          },
        },
        ModelsResponse: {
          type: "object",
          properties: {
            active: {
              type: "object",
              description:
                "name, version, created, backend, precision, latentSize, labels, dataset, metrics, decoder, novelty ({available, threshold, ...}), evaluation",
              properties: {
                evaluation: {
                  type: ["object", "null"],
                  description:
                    "The regression gate's verdict on publish (evaluation.json): verdict (passed, refused, forced), against (the version compared with), images, accuracy {active, candidate}, drop and worstClass {label, drop} in points, novelShare {active, candidate}, agreement, regressions (one line each); null when the bundle carries none",
                },
              },
            },
            versions: {
              type: "array",
              items: {
                type: "object",
                properties: {
                  version: { type: "string" },
                  active: { type: "boolean" },
                  hasManifest: { type: "boolean" },
                },
              },
            },
          },
        },
      },
    },
  };
}
