/**
 * The route definitions (createRoute) of the demo page and the endpoints only it needs; ./mod.ts
 * and ./samples.ts route by them and /openapi.json documents them.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { InputLimits } from "../inputs.ts";
import { err, imageRoute, pngAnswer, preprocessQuery } from "../routes/common.ts";
import { ModelRefSchema } from "../routes/schemas.ts";

const noModel = err("No validated model is loaded.");
const ok = <T extends z.ZodType>(description: string, schema: T) => ({
  description,
  content: { "application/json": { schema } },
});

export const pageRoute = createRoute({
  method: "get",
  path: "/",
  summary: "Demo page",
  description:
    "An HTML page that classifies an uploaded, pasted or sample image with this API and " +
    "shows the probabilities, the latent vector, the reconstruction, a latent map and " +
    "latent sliders. It loads nothing from other hosts.",
  responses: { 200: { description: "The page", content: { "text/html": { schema: z.string() } } } },
});

const asset = { schema: { type: "string" as const } };
export const assetRoute = createRoute({
  method: "get",
  path: "/demo/*",
  summary: "The demo page's script, stylesheet and fallback samples",
  description:
    "samples/samples.json lists fallback sample PNGs (Fashion-MNIST test images), shown " +
    "only for a bundle without samples of its own whose labels they match.",
  responses: {
    200: {
      description: "The asset, by its extension",
      content: {
        "text/javascript": asset,
        "text/css": asset,
        "image/png": { schema: { type: "string", format: "binary" } },
        "application/json": { schema: {} },
      },
    },
    404: err("No such asset."),
  },
});

export function preprocessRoute(limits: InputLimits) {
  return imageRoute(limits, {
    path: "/v1/preprocess",
    summary: "The 28x28 input the model sees for one image",
    description:
      "Runs exactly the preprocessing of /v1/classify on one image and returns the result " +
      "as a 28x28 grey PNG (light on dark).",
    query: z.object({ preprocess: preprocessQuery }),
    single: true,
    ok: pngAnswer,
  });
}

const LatentMapResponseSchema = z.object({
  model: ModelRefSchema,
  format: z.string(),
  method: z.string(),
  mean: z.array(z.number()),
  components: z.array(z.array(z.number())),
  points: z.array(z.array(z.number())).openapi({ description: "2-D, one per test image" }),
  labels: z.array(z.number().int()).openapi({ description: "class index of each point" }),
  source: z.string().optional(),
}).openapi("LatentMapResponse");

export const latentMapRoute = createRoute({
  method: "get",
  path: "/v1/models/active/latent-map",
  summary: "The active model's latent map",
  description:
    "latent-map.json of the active bundle, written at export: 2-D coordinates (points) and " +
    "class indexes (labels) of test images' latent means, and the projection that made " +
    "them: point = components . (mu - mean). Also names the model.",
  responses: {
    200: ok("The map and the model it belongs to", LatentMapResponseSchema),
    404: err("The active bundle was exported without a latent map."),
    503: noModel,
  },
});

export const SAMPLES_PATH = "/v1/models/active/samples";

export const samplesRoute = createRoute({
  method: "get",
  path: SAMPLES_PATH,
  summary: "The active model's sample images",
  description:
    "A few held-out images per class stored in the bundle (samples.json): index, class " +
    "index, class name and the URL of each as a 28x28 PNG. The demo page's examples.",
  responses: {
    200: ok(
      "The model and its samples",
      z.object({
        model: ModelRefSchema,
        samples: z.array(z.object({
          index: z.number().int(),
          label: z.number().int(),
          name: z.string(),
          url: z.string(),
        })),
      }),
    ),
    404: err("The active bundle carries no samples."),
    503: noModel,
  },
});

/** The index is checked by the handler: anything but a sample's index is a 404, as for a file. */
export const sampleRoute = createRoute({
  method: "get",
  path: `${SAMPLES_PATH}/{index}`,
  summary: "One sample image of the active model, as a 28x28 grey PNG",
  request: { params: z.object({ index: z.string().openapi({ type: "integer" } as never) }) },
  responses: {
    200: pngAnswer,
    404: err("No such sample."),
    503: noModel,
  },
});
