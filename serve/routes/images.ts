/**
 * POST /v1/reconstruct (one image through encoder and decoder) and POST /v1/decode (a latent
 * vector to an image), both answering a 28x28 grey PNG. The bodies are parsed by
 * serve/inputs.ts (content type, size limits, the latent length of the pinned model).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ApiError } from "../errors.ts";
import type { LoadedModel } from "../inference/mod.ts";
import { readLatent, readOneImage } from "../inputs.ts";
import { pngResponse } from "../png_response.ts";
import {
  type Api,
  defineRoute,
  err,
  imageRoute,
  jsonObjectBody,
  pngAnswer,
  preprocessQuery,
  type RouteDeps,
  setModelHeaders,
} from "./common.ts";

const noDecoder = err("The bundle has no decoder.");

function needDecoder(m: LoadedModel): void {
  if (!m.hasDecoder) {
    throw new ApiError(
      501,
      "no_decoder",
      `Model ${m.name}@${m.version} was exported without a decoder`,
    );
  }
}

function reconstructRoute(deps: RouteDeps) {
  return imageRoute(deps.limits, {
    path: "/v1/reconstruct",
    summary: "Reconstruct one image through the VAE",
    description:
      "Encodes the image and decodes its mean latent code with the same bundle's decoder.",
    query: z.object({ preprocess: preprocessQuery }),
    single: true,
    ok: pngAnswer,
    more: { 501: noDecoder },
  });
}

/** The latent's length depends on the pinned model, so readLatent checks it; this describes it. */
const decodeRoute = createRoute({
  method: "post",
  path: "/v1/decode",
  summary: "Decode a latent vector to an image",
  request: {
    body: jsonObjectBody(["latent"], {
      latent: {
        type: "array",
        items: { type: "number" },
        description: "Exactly latentSize numbers (see /v1/models).",
      },
    }),
  },
  responses: {
    200: pngAnswer,
    400: err('Not JSON or not {"latent": [...]}.'),
    415: err("Not application/json."),
    422: err("Wrong latent length or non-finite values."),
    501: noDecoder,
    503: err("No validated model is loaded."),
  },
});

export function imageRoutes(app: Api, deps: RouteDeps): void {
  const { limits, metrics, withModel } = deps;
  defineRoute(app, reconstructRoute(deps), async (c) => {
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

  app.openapi(decodeRoute, async (c) => {
    return await withModel(async (m) => {
      needDecoder(m);
      const z = await readLatent(c.req.raw, limits, m.latentSize);
      const px = await m.decode(z, 1);
      setModelHeaders(c, m);
      return pngResponse(c, px);
    });
  });
}
