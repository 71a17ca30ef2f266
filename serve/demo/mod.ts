/**
 * The demo web page and the two endpoints only it needs, as a Hono sub-app that app.ts mounts
 * with one line (`app.route("/", demoRoutes(...))`). GET / serves index.html; GET /demo/*
 * serves the page's own script modules, stylesheet and bundled samples from this directory (a fixed
 * name pattern and extension list, so nothing else on disk is reachable); everything the page
 * shows comes from the public API plus POST /v1/preprocess (the 28x28 input the model really
 * sees, from the same readImageBatch/preprocess path as /v1/classify) and
 * GET /v1/models/active/latent-map (the active bundle's latent-map.json). The page loads
 * nothing from other hosts, and its Content-Security-Policy forbids it from trying. Errors are
 * thrown as ApiError and rendered by app.ts's onError. The routes document themselves in the
 * OpenAPI document they are given, so /openapi.json and /docs list them.
 */
import { Hono } from "hono";
import { readFile } from "node:fs/promises";
import { bundleFile, type LatentMap, validateLatentMap } from "../../bundle/mod.ts";
import { ApiError } from "../errors.ts";
import { pngResponse } from "../png_response.ts";
import type { LoadedModel, ModelSlot } from "../inference/mod.ts";
import { NoModelError } from "../inference/slot.ts";
import { type InputLimits, readOneImage } from "../inputs.ts";
import { documentSamples, sampleRoutes } from "./samples.ts";

export interface DemoDeps {
  slot: ModelSlot;
  limits: InputLimits;
  /** The app's OpenAPI document: the demo's routes are added to its `paths`. */
  openApi?: Record<string, unknown>;
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

function documentRoutes(doc: Record<string, unknown>, limits: InputLimits): void {
  const paths = (doc.paths ??= {}) as Record<string, unknown>;
  const error = (description: string) => ({
    description,
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  });
  paths["/"] = {
    get: {
      summary: "Demo page",
      description:
        "An HTML page that classifies an uploaded, pasted or sample image with this API and " +
        "shows the probabilities, the latent vector, the reconstruction, a latent map and " +
        "latent sliders. It loads nothing from other hosts.",
      responses: { "200": { description: "text/html" } },
    },
  };
  paths["/demo/*"] = {
    get: {
      summary: "The demo page's script, stylesheet and fallback samples",
      description:
        "samples/samples.json lists fallback sample PNGs (Fashion-MNIST test images), shown " +
        "only for a bundle without samples of its own whose labels they match.",
      responses: {
        "200": { description: "text/javascript, text/css, image/png or application/json" },
        "404": error("No such asset."),
      },
    },
  };
  paths["/v1/preprocess"] = {
    post: {
      summary: "The 28x28 input the model sees for one image",
      description:
        "Runs exactly the preprocessing of /v1/classify on one image and returns the result " +
        `as a 28x28 grey PNG (light on dark). Bodies above ${limits.maxBodyBytes} bytes get 413.`,
      parameters: [{
        name: "preprocess",
        in: "query",
        required: false,
        schema: { type: "string", enum: ["auto", "none"], default: "auto" },
        description: "As for /v1/classify.",
      }],
      requestBody: {
        required: true,
        description: "One image, in any of the body types /v1/classify accepts.",
        content: {
          "image/png": { schema: { type: "string", format: "binary" } },
          "image/jpeg": { schema: { type: "string", format: "binary" } },
        },
      },
      responses: {
        "200": {
          description: "28x28 grey PNG",
          content: { "image/png": { schema: { type: "string", format: "binary" } } },
        },
        "400": error("Body does not parse."),
        "413": error("Body or image too large."),
        "415": error("Content-Type not supported."),
        "422": error("More than one image, or wrong pixel values."),
      },
    },
  };
  documentSamples(paths, error);
  paths["/v1/models/active/latent-map"] = {
    get: {
      summary: "The active model's latent map",
      description:
        "latent-map.json of the active bundle, written at export: 2-D coordinates (points) and " +
        "class indexes (labels) of test images' latent means, and the projection that made " +
        "them: point = components . (mu - mean). Also names the model.",
      responses: {
        "200": { description: "{model, format, method, mean, components, points, labels}" },
        "404": error("The active bundle was exported without a latent map."),
        "503": error("No validated model is loaded."),
      },
    },
  };
}

export function demoRoutes(deps: DemoDeps): Hono {
  const { slot, limits } = deps;
  if (deps.openApi) documentRoutes(deps.openApi, limits);
  const app = new Hono();
  // Read once; the files are small and fixed for the life of the process.
  const assets = new Map<string, Promise<Uint8Array>>();
  const asset = (name: string) => {
    let p = assets.get(name);
    if (!p) {
      p = readFile(new URL(name, DEMO_DIR));
      p.catch(() => assets.delete(name)); // a missing file is retried, not cached as missing
      assets.set(name, p);
    }
    return p;
  };
  // Verified against its sha256 when the model loaded; parsed once per loaded model.
  const maps = new WeakMap<LoadedModel, Promise<LatentMap | null>>();

  app.get("/", async (c) => {
    const html = new TextDecoder().decode(await asset("index.html"));
    return c.html(html, 200, { "Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache" });
  });

  app.get("/demo/*", async (c) => {
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

  app.post("/v1/preprocess", async (c) => {
    const image = await readOneImage(c.req.raw, limits, "/v1/preprocess");
    return pngResponse(c, image);
  });

  sampleRoutes(app, slot);

  app.get("/v1/models/active/latent-map", async (c) => {
    try {
      return await slot.use(async (model) => {
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
        const map = await p;
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
