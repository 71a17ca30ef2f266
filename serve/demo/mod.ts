/**
 * The demo web page and the two endpoints only it needs, as a Hono sub-app that app.ts mounts
 * with one line (`app.route("/", demoRoutes(...))`). GET / serves index.html; GET /demo/*
 * serves the page's own script modules, stylesheet and bundled samples from this directory (a fixed
 * name pattern and extension list, so nothing else on disk is reachable); everything the page
 * shows comes from the public API plus POST /v1/preprocess (the 28x28 input the model really
 * sees, from the same readImageBatch/preprocess path as /v1/classify) and
 * GET /v1/models/active/latent-map (the active bundle's latent-map.json). The page loads
 * nothing from other hosts, and its Content-Security-Policy forbids it from trying. Errors are
 * thrown as ApiError and rendered by app.ts's onError. The routes come from their definitions
 * in ./openapi.ts, which the app's /openapi.json and /docs list once mounted.
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { readFile } from "node:fs/promises";
import { validateLatentMap } from "../../bundle/mod.ts";
import { ApiError } from "../errors.ts";
import { pngResponse } from "../png_response.ts";
import type { ModelSlot } from "../inference/mod.ts";
import { type InputLimits, readOneImage } from "../inputs.ts";
import { defineRoute } from "../routes/common.ts";
import { bundleJson } from "./bundle_json.ts";
import { assetRoute, latentMapRoute, pageRoute, preprocessRoute } from "./openapi.ts";
import { sampleRoutes } from "./samples.ts";

export interface DemoDeps {
  slot: ModelSlot;
  limits: InputLimits;
}

const DEMO_DIR = new URL("./", import.meta.url);

/** Asset names the page may load: its own files and samples/, by extension. */
const ASSET_NAME = /^(?:samples\/)?[a-z0-9][a-z0-9-]*\.(js|css|png|json)$/;
const ASSET_TYPES: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  png: "image/png",
  json: "application/json; charset=utf-8",
};

/** Same-origin only: the page works offline and cannot be made to pull in a CDN. */
const PAGE_CSP = [
  "default-src 'self'",
  "img-src 'self' data: blob:",
  "style-src 'self'",
  "script-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** A reader of this directory's files, each read once: they are small and fixed for the process. */
function assetReader(): (name: string) => Promise<Uint8Array> {
  const assets = new Map<string, Promise<Uint8Array>>();
  return (name) => {
    let p = assets.get(name);
    if (!p) {
      p = readFile(new URL(name, DEMO_DIR));
      p.catch(() => assets.delete(name)); // a missing file is retried, not cached as missing
      assets.set(name, p);
    }
    return p;
  };
}

export function demoRoutes(deps: DemoDeps): OpenAPIHono {
  const { slot, limits } = deps;
  const app = new OpenAPIHono();
  const asset = assetReader();
  const withLatentMap = bundleJson(slot, {
    role: "latent-map",
    check: (raw, model) => validateLatentMap(raw, model.latentSize, model.labels.length),
    missing: { code: "no_latent_map", says: "was exported without a latent map" },
  });

  defineRoute(app, pageRoute, async (c) => {
    const html = new TextDecoder().decode(await asset("index.html"));
    return c.html(html, 200, { "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache" });
  });

  defineRoute(app, assetRoute, async (c) => {
    const name = c.req.path.slice("/demo/".length);
    const m = ASSET_NAME.exec(name);
    if (!m) throw new ApiError(404, "not_found", `No demo asset named ${JSON.stringify(name)}`);
    let bytes: Uint8Array;
    try {
      bytes = await asset(name);
    } catch {
      throw new ApiError(404, "not_found", `No demo asset named ${JSON.stringify(name)}`);
    }
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": ASSET_TYPES[m[1]],
      "Cache-Control": "no-cache",
    });
  });

  defineRoute(app, preprocessRoute(limits), async (c) => {
    const image = await readOneImage(c.req.raw, limits, "/v1/preprocess");
    return pngResponse(c, image);
  });

  sampleRoutes(app, slot);

  defineRoute(
    app,
    latentMapRoute,
    (c) =>
      withLatentMap(
        c,
        (model, map) => c.json({ model: { name: model.name, version: model.version }, ...map }),
      ),
  );

  return app;
}
