/**
 * The zod schemas of the /v1 responses, each registered under its component name, so the route
 * definitions (serve/routes/*.ts) state their answers once and /openapi.json gets them as
 * `#/components/schemas/<name>`.
 */
import { z } from "@hono/zod-openapi";

export const ErrorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
}).openapi("Error");

export const ModelRefSchema = z.object({ name: z.string(), version: z.string() }).openapi(
  "ModelRef",
);

export const NoveltySchema = z.object({
  available: z.boolean(),
  score: z.number().nullable(),
  percentile: z.number().min(0).max(100).nullable(),
  outOfDistribution: z.boolean().nullable(),
}).openapi("Novelty", {
  description:
    "How unlike the model's training images the input is: the smallest Mahalanobis distance of its latent code and image statistics to the class Gaussians fitted at export. percentile: share (0..100) of held-out training images scoring at most this; outOfDistribution: above the threshold (by default their 95th percentile; the server's --novelty-percentile changes it). available is false, and the rest null, when the bundle carries no calibration.",
});

export const LatentSchema = z.object({
  space: z.string().openapi({ description: "latent space id (POST /v1/latent/translate)" }),
  mu: z.array(z.number()),
  logvar: z.array(z.number()),
  samples: z.array(z.array(z.number())).optional(),
  novelty: NoveltySchema.optional(),
}).openapi("Latent");

export const ClassifyResponseSchema = z.object({
  model: ModelRefSchema,
  latentSpace: z.string(),
  predictions: z.array(z.object({
    label: z.string().nullable().openapi({ description: "null when abstaining" }),
    reason: z.enum(["out_of_distribution"]).optional(),
    index: z.number().int(),
    confidence: z.number(),
    probabilities: z.array(z.number()),
    latent: LatentSchema,
    novelty: NoveltySchema,
  })),
}).openapi("ClassifyResponse");

export const LatentResponseSchema = z.object({
  model: ModelRefSchema,
  latentSpace: z.string(),
  seed: z.number().int().optional(),
  latents: z.array(LatentSchema),
}).openapi("LatentResponse");

/** /v1/models' `traffic` field: the canary and the shadow as this replica sees them (serve/traffic/). */
export const TrafficStatusSchema = z.object({
  canary: z.object({
    version: z.string(),
    percent: z.number(),
    loaded: z.boolean(),
    routing: z.boolean(),
    stopped: z.string().nullable().openapi({ description: "the bound an automatic abort passed" }),
    abortWriteError: z.string().nullable(),
    error: z.string().nullable().openapi({ description: "why the canary's bundle did not load" }),
    requests: z.number().int(),
    errors: z.number().int(),
    p99Ms: z.number(),
  }).nullable(),
  shadow: z.object({
    version: z.string(),
    loaded: z.boolean(),
    error: z.string().nullable(),
    compared: z.number().int(),
    agreed: z.number().int(),
    agreement: z.number().nullable(),
    meanLatentDistance: z.number().nullable(),
    dropped: z.number().int(),
    failures: z.number().int(),
    queued: z.number().int(),
  }).nullable(),
}).openapi("TrafficStatus", {
  description: "present when the server routes canary or shadow traffic; null parts are off",
});

export const ModelsResponseSchema = z.object({
  active: z.object({
    evaluation: z.record(z.string(), z.unknown()).nullable().openapi({
      description:
        "The regression gate's verdict on publish (evaluation.json): verdict (passed, refused, forced), against (the version compared with), images, accuracy {active, candidate}, drop and worstClass {label, drop} in points, novelShare {active, candidate}, agreement, regressions (one line each); null when the bundle carries none",
    }),
  }).catchall(z.unknown()).openapi({
    description:
      "name, version, created, backend, precision, latentSize, latentSpace, labels, dataset, metrics, decoder, probe, novelty ({available, threshold, ...}), evaluation",
  }),
  source: z.enum(["bundle", "registry"]),
  versions: z.array(z.object({
    version: z.string(),
    active: z.boolean(),
    hasManifest: z.boolean(),
  })),
  lastError: z.object({ message: z.string(), time: z.string(), version: z.string().nullable() })
    .nullable().optional().openapi({ description: "the last rejected bundle and why" }),
  reload: z.record(z.string(), z.unknown()).optional(),
  traffic: TrafficStatusSchema.optional(),
}).openapi("ModelsResponse");

/** ImageJson is parsed by serve/inputs.ts (its errors name the bad field), so it is plain JSON Schema. */
export function imageJsonSchema(maxBatch: number) {
  return {
    oneOf: [
      {
        type: "object",
        required: ["pixels"],
        properties: {
          pixels: {
            type: "array",
            maxItems: maxBatch,
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
            maxItems: maxBatch,
            items: {
              type: "string",
              contentEncoding: "base64",
              description: "PNG or JPEG bytes (a data: URL prefix is accepted)",
            },
          },
        },
      },
    ],
  };
}
