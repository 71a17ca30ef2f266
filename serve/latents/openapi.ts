/**
 * The route definitions (createRoute) of the latent-space endpoints: translation
 * (./routes.ts), the gallery and similarity search (serve/gallery/routes.ts). Their handlers
 * route by them and /openapi.json documents them. Bodies are described as plain JSON Schema
 * because the handlers parse them, with errors that name the bad field.
 */
import { createRoute, type RouteConfig, z } from "@hono/zod-openapi";
import type { InputLimits } from "../inputs.ts";
import { denied } from "../routes/admin_doc.ts";
import {
  err,
  imageRoute,
  intQuery,
  type JsonField,
  jsonObjectBody,
  pngAnswer,
  preprocessQuery,
} from "../routes/common.ts";
import { ModelRefSchema } from "../routes/schemas.ts";

/** Most latents per translate request: a non-linear map costs ~20k multiply-adds per latent. */
export const MAX_TRANSLATE = 1000;
/** Most neighbours per similarity search. */
export const MAX_K = 100;
/** Most items per admin add request (each is embedded before the answer). */
export const MAX_ADD = 1000;

const latents: JsonField = { type: "array", items: { type: "array", items: { type: "number" } } };
const ok = <T extends z.ZodType>(description: string, schema: T) => ({
  description,
  content: { "application/json": { schema } },
});
const noModel = err("No model is loaded.");
const noGallery = err("No gallery (--gallery), or it cannot be opened; the message says why.");

const TranslateResponseSchema = z.object({
  model: ModelRefSchema,
  latentSpace: z.string(),
  from: z.string(),
  path: z.array(z.object({
    from: z.string(),
    to: z.string(),
    method: z.string(),
    r2: z.number(),
    neighbours: z.number().openapi({ description: "share of 10 nearest neighbours kept" }),
  })),
  latents: z.array(z.array(z.number())),
}).openapi("TranslateResponse");

export const GalleryStatusSchema = z.object({
  items: z.number().int(),
  latentSpace: z.string().nullable(),
  fresh: z.number().int(),
  translated: z.number().int(),
  pending: z.number().int(),
  reembedding: z.object({ space: z.string(), done: z.number().int(), total: z.number().int() })
    .nullable(),
  consistent: z.boolean().openapi({
    description: "every searchable latent was computed by the active model",
  }),
  search: z.enum(["clusters", "scan"]),
}).openapi("GalleryStatus");

const SimilarResponseSchema = z.object({
  model: ModelRefSchema,
  latentSpace: z.string(),
  k: z.number().int(),
  query: z.object({
    kind: z.enum(["image", "latent"]),
    latent: z.array(z.number()).optional(),
    translatedFrom: z.string().optional(),
  }),
  results: z.array(z.object({
    id: z.string(),
    distance: z.number().openapi({ description: "Euclidean distance between mu vectors" }),
    translated: z.boolean().openapi({ description: "a translation awaiting re-embedding" }),
    metadata: z.unknown(),
  })),
  gallery: GalleryStatusSchema,
}).openapi("SimilarResponse");

export const translateRoute = createRoute({
  method: "post",
  path: "/v1/latent/translate",
  summary: "Translate stored latents into the active latent space",
  description: "Every latent the service returns names its space (latent.space, latentSpace, " +
    "X-Latent-Space). The maps come from the bundles (fitted at publish time on held-out " +
    "images) and are chained through versions.",
  request: {
    body: jsonObjectBody(["from", "latents"], {
      from: { type: "string", description: "the latent space the latents came from" },
      latents: { ...latents, maxItems: MAX_TRANSLATE },
    }),
  },
  responses: {
    200: ok(
      "The latents in the active space, and the maps that took them there",
      TranslateResponseSchema,
    ),
    400: err("Body is not JSON or lacks from/latents."),
    404: err("No map leads from that space to the active one (the message names the gap)."),
    413: err(`Body above the limit, or more than ${MAX_TRANSLATE} latents.`),
    415: err("Not application/json."),
    422: err("A latent has the wrong length, or a map's fit is below --translate-min-neighbours."),
    503: noModel,
  },
});

/** /v1/similar's JSON body when it names a latent rather than an image. */
const LATENT_QUERY: JsonField = {
  type: "object",
  required: ["latent"],
  properties: {
    latent: { type: "array", items: { type: "number" } },
    space: { type: "string", description: "its latent space (default: the active one)" },
    k: { type: "integer", minimum: 1, maximum: MAX_K },
  },
};

/** POST /v1/similar: one image (any /v1/classify body), or JSON naming a latent. */
export function similarRoute(limits: InputLimits) {
  return imageRoute(limits, {
    path: "/v1/similar",
    summary: "Nearest gallery items to an image or a latent",
    description: 'An image (any /v1/classify input, one image) or JSON {"latent": [L numbers], ' +
      '"space"?: "<id>", "k"?: 10}; a latent from another space is translated first.',
    query: z.object({
      k: intQuery("k", 1, MAX_K, { default: 10, description: "How many items (JSON k wins)." }),
      preprocess: preprocessQuery,
    }),
    single: true,
    ok: ok("The k nearest items, nearest first", SimilarResponseSchema),
    json: { oneOf: [{ $ref: "#/components/schemas/ImageJson" }, LATENT_QUERY] },
    more: {
      404: err("The latent's space cannot be translated to the active one."),
      422: err("More than one image, or a latent of the wrong length or with non-finite values."),
      503: noGallery,
    },
  });
}

export const galleryRoute = createRoute({
  method: "get",
  path: "/v1/gallery",
  summary: "Gallery status",
  responses: {
    200: ok("Items, latent space, pending, translated, re-embedding", GalleryStatusSchema),
    503: noGallery,
  },
});

/** A route on one gallery item, named by the {id} in its path. */
function itemRoute(
  method: "get" | "delete",
  path: string,
  summary: string,
  responses: RouteConfig["responses"],
) {
  const params = z.object({ id: z.string().openapi({ description: "the item's id" }) });
  return createRoute({ method, path, summary, request: { params }, responses });
}

export const galleryImageRoute = itemRoute(
  "get",
  "/v1/gallery/items/{id}/image",
  "A gallery item's 28x28 image as PNG",
  { 200: pngAnswer, 404: err("No such item."), 503: noGallery },
);

export const galleryAddRoute = createRoute({
  method: "post",
  path: "/v1/admin/gallery/items",
  summary: "Add or replace gallery items (admin token needed)",
  description: "Each image is preprocessed like /v1/classify and embedded before the answer.",
  request: {
    body: jsonObjectBody(["items"], {
      items: {
        type: "array",
        minItems: 1,
        maxItems: MAX_ADD,
        items: {
          type: "object",
          required: ["id"],
          properties: {
            id: { type: "string", minLength: 1, maxLength: 200 },
            image: { type: "string", contentEncoding: "base64", description: "PNG or JPEG" },
            pixels: { type: "array", minItems: 784, maxItems: 784, items: { type: "number" } },
            metadata: {},
          },
        },
      },
    }),
  },
  responses: {
    201: ok(
      "The ids added and the gallery status",
      z.object({ added: z.array(z.string()), gallery: GalleryStatusSchema }),
    ),
    400: err("Malformed items."),
    ...denied,
    404: err("The admin API is disabled (no token configured)."),
    413: err(`Body above the limit, or more than ${MAX_ADD} items.`),
    415: err("Not application/json."),
    422: err("Pixels not 784 numbers in 0..255."),
    503: noGallery,
  },
});

export const galleryRemoveRoute = itemRoute(
  "delete",
  "/v1/admin/gallery/items/{id}",
  "Remove a gallery item (admin token needed)",
  {
    200: ok("The id removed", z.object({ removed: z.string() })),
    ...denied,
    404: err("No such item, or the admin API is disabled."),
    503: noGallery,
  },
);
