/**
 * GET /openapi.json and GET /docs. The document is generated from the routes' definitions
 * (getOpenAPI31Document) when it is first asked for, once every route group has registered.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { renderDocs } from "../docs.ts";
import type { InputLimits } from "../inputs.ts";
import type { Api } from "./common.ts";
import { imageJsonSchema } from "./schemas.ts";

type Json = Record<string, unknown>;

const INFO = {
  title: "latent-edge",
  version: "1",
  description:
    "A convolutional VAE trained on a labelled image set (Fashion-MNIST by default; the class " +
    "names come from the active bundle, GET /v1/models): classify images, read their latent " +
    "codes, reconstruct and decode. Every model response carries the model name and version (body and " +
    'X-Model-Version header). Errors are JSON: {"error": {"code", "message"}}.',
};

const openApiRoute = createRoute({
  method: "get",
  path: "/openapi.json",
  summary: "This document",
  responses: {
    200: {
      description: "OpenAPI 3.1",
      content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
    },
  },
});

const docsRoute = createRoute({
  method: "get",
  path: "/docs",
  summary: "Human-readable API documentation",
  responses: {
    200: { description: "HTML", content: { "text/html": { schema: z.string() } } },
  },
});

/** Registers /openapi.json and /docs; the document holds every route registered by then. */
export function docRoutes(app: Api, limits: InputLimits): () => Json {
  app.openAPIRegistry.registerComponent(
    "schemas",
    "ImageJson",
    imageJsonSchema(limits.maxBatch) as Parameters<Api["openAPIRegistry"]["registerComponent"]>[2],
  );
  let doc: Json | undefined;
  const document = (): Json => {
    if (doc) return doc;
    const generated = app.getOpenAPI31Document({ openapi: "3.1.0", info: INFO }) as unknown as Json;
    const { webhooks: _none, ...rest } = generated;
    doc = rest;
    return doc;
  };
  app.openapi(openApiRoute, (c) => c.json(document(), 200));
  app.openapi(
    docsRoute,
    (c) => c.html(renderDocs(document(), c.req.header("host") ?? "localhost:8000"), 200),
  );
  return document;
}
