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
import { bundleFile, type LatentMap, validateLatentMap } from "../../bundle/mod.ts";
import { ApiError } from "../errors.ts";
import { pngResponse } from "../png_response.ts";
import type { LoadedModel, ModelSlot } from "../inference/mod.ts";
import { NoModelError } from "../inference/slot.ts";
import { type InputLimits, readOneImage } from "../inputs.ts";
import { defineRoute } from "../routes/common.ts";
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

/**
 * The latent map of a model, or null when its bundle has none: verified against its sha256
 * when the model loaded, parsed once per loaded model.
 */
function latentMapReader(): (model: LoadedModel) => Promise<LatentMap | null> {
  const maps = new WeakMap<LoadedModel, Promise<LatentMap | null>>();
  return (model) => {
    let p = maps.get(model);
    if (!p) {
      p = (async () => {
        if (!model.manifest.files.some((f) => f.role === "latent-map")) return null;
        const path = bundleFile(model.dir, model.manifest, "latent-map");
        const raw = JSON.parse(await readFile(path, "utf8"));
        return validateLatentMap(raw, model.latentSize, model.labels.length);
      })();
      p.catch(() => maps.delete(model));
      maps.set(model, p);
    }
    return p;
  };
}

export function demoRoutes(deps: DemoDeps): OpenAPIHono {
  const { slot, limits } = deps;
  const app = new OpenAPIHono();
  const asset = assetReader();
  const latentMap = latentMapReader();

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

  defineRoute(app, latentMapRoute, async (c) => {
    try {
      return await slot.use(async (model) => {
        const map = await latentMap(model);
        if (!map) {
          throw new ApiError(
            404,
            "no_latent_map",
            `Model ${model.name}@${model.version} was exported without a latent map`,
          );
        }
        c.header("X-Model-Name", model.name);
        c.header("X-Model-Version", model.version);
        c.header("Cache-Control", "no-cache");
        return c.json({ model: { name: model.name, version: model.version }, ...map });
      });
    } catch (e) {
      if (e instanceof NoModelError) throw new ApiError(503, "not_ready", e.message);
      throw e;
    }
  });

  return app;
}
