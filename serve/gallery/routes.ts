/**
 * The gallery's HTTP API.
 *   POST /v1/similar                  an image, or {"latent": [...], "space"?, "k"?} -> k nearest items
 *   GET  /v1/gallery                  status: items, latent space, translated/pending, re-embedding
 *   GET  /v1/gallery/items/:id/image  the item's 28x28 image (PNG)
 * and, under the admin token (galleryAdminRoutes, mounted at /v1/admin/gallery):
 *   POST   /items      {"items": [{"id", "image": "<base64 PNG/JPEG>" | "pixels": [784], "metadata"?}]}
 *   DELETE /items/:id
 * Without a usable gallery (no --gallery, or the file cannot be opened) these answer 503 with
 * the reason; the rest of the service is unaffected. The routes' definitions, which
 * /openapi.json documents, are in serve/latents/openapi.ts.
 */
import type { Context } from "hono";
import { encodeGreyPng } from "../../common/image_codec.ts";
import { IMAGE_SIZE, PIXELS } from "../../common/labels.ts";
import { toBytes } from "../../common/preprocess.ts";
import { ApiError } from "../errors.ts";
import type { LoadedModel } from "../inference/mod.ts";
import { imageToInput, type InputLimits, mediaType, readBody, readImageBatch } from "../inputs.ts";
import {
  galleryAddRoute,
  galleryImageRoute,
  galleryRemoveRoute,
  galleryRoute,
  MAX_ADD,
  MAX_K,
  similarRoute,
} from "../latents/openapi.ts";
import { type Api, defineRoute, intValue, modeOf } from "../routes/common.ts";
import { latentJson, latentRows, spaceOf, translationApiError } from "../latents/routes.ts";
import { applyPath, type Translator } from "../latents/translate.ts";
import type { Gallery, NewItem } from "./gallery.ts";
import { decodeBase64 } from "../../common/base64.ts";

/** The gallery the service runs with, or why there is none. */
export interface GalleryHandle {
  current: Gallery | null;
  reason: string;
}

export interface GalleryRouteDeps {
  handle: GalleryHandle;
  translator: Translator;
  limits: InputLimits;
  withModel: <T>(fn: (m: LoadedModel) => Promise<T>) => Promise<T>;
}

function need(h: GalleryHandle): Gallery {
  if (!h.current) throw new ApiError(503, "gallery_unavailable", `No gallery: ${h.reason}`);
  return h.current;
}

function parseK(raw: unknown, from: string): number {
  if (raw === undefined || raw === null || raw === "") return 10;
  const k = Number(raw);
  if (!Number.isInteger(k) || k < 1 || k > MAX_K) {
    throw new ApiError(
      400,
      "bad_parameter",
      `${from} must be an integer in 1..${MAX_K}, got ${JSON.stringify(raw)}`,
    );
  }
  return k;
}

function parseJsonBody(bytes: Uint8Array): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ApiError(400, "bad_json", `Request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new ApiError(400, "bad_json_shape", "JSON body must be an object");
  }
  return doc as Record<string, unknown>;
}

type Query = { latent: unknown; space: string | null } | { image: Float32Array };

type SimilarQuery = { k?: string; preprocess?: string };

/** Reads the /v1/similar body: a latent (JSON with "latent") or exactly one image. */
async function readQuery(
  c: Context,
  limits: InputLimits,
  params: SimilarQuery,
): Promise<{ q: Query; k: number }> {
  const req = c.req.raw;
  const mode = modeOf(params.preprocess);
  let k = intValue(params.k) ?? 10;
  if (mediaType(req.headers.get("content-type")) === "application/json") {
    const bytes = await readBody(req, limits.maxBodyBytes);
    const doc = parseJsonBody(bytes);
    if ("k" in doc) k = parseK(doc.k, '"k"');
    if ("latent" in doc) {
      if (doc.space !== undefined && (typeof doc.space !== "string" || !doc.space)) {
        throw new ApiError(400, "bad_json_shape", '"space" must be a latent space id');
      }
      return { q: { latent: doc.latent, space: (doc.space as string | undefined) ?? null }, k };
    }
    const again = new Request(req.url, {
      method: "POST",
      headers: req.headers,
      body: bytes as Uint8Array<ArrayBuffer>,
    });
    return { q: await oneImage(again, limits, mode), k };
  }
  return { q: await oneImage(req, limits, mode), k };
}

async function oneImage(
  req: Request,
  limits: InputLimits,
  mode: "auto" | "none",
): Promise<Query> {
  const batch = await readImageBatch(req, limits, mode);
  if (batch.count !== 1) {
    throw new ApiError(
      422,
      "one_image_only",
      `/v1/similar takes exactly one image, got ${batch.count}`,
    );
  }
  return { image: batch.images };
}

/** Registers /v1/similar, /v1/gallery and the item images on `app`. */
export function galleryRoutes(app: Api, deps: GalleryRouteDeps): void {
  defineRoute(app, similarRoute(deps.limits), async (c, params) => {
    const g = need(deps.handle);
    const { q, k } = await readQuery(c, deps.limits, params);
    return await deps.withModel(async (m) => {
      await g.align(m);
      let vec: Float32Array;
      let query: Record<string, unknown>;
      if ("image" in q) {
        vec = (await m.encode(q.image, 1)).mu;
        query = { kind: "image", latent: Array.from(vec) };
      } else if (q.space && q.space !== spaceOf(m)) {
        let path;
        try {
          path = await deps.translator.path(m.dir, m.manifest, q.space);
        } catch (e) {
          throw translationApiError(e);
        }
        vec = applyPath(path, latentRows([q.latent], path.fromSize, "latent", 1), 1);
        query = { kind: "latent", translatedFrom: q.space };
      } else {
        vec = latentRows([q.latent], m.latentSize, "latent", 1);
        query = { kind: "latent" };
      }
      return latentJson(c, m, { k, query, results: g.search(vec, k), gallery: g.status() });
    });
  });

  defineRoute(app, galleryRoute, (c) => c.json(need(deps.handle).status()));

  defineRoute(app, galleryImageRoute, (c) => {
    const { id } = c.req.param();
    const item = need(deps.handle).store.get(id);
    if (!item) throw new ApiError(404, "no_item", `No gallery item ${JSON.stringify(id)}`);
    return c.body(
      encodeGreyPng(item.pixels, IMAGE_SIZE, IMAGE_SIZE) as Uint8Array<ArrayBuffer>,
      200,
      {
        "Content-Type": "image/png",
        "Cache-Control": "no-cache",
      },
    );
  });
}

/** Parses one admin item: an id, an image (base64) or 784 pixels, optional metadata. */
function parseItem(raw: unknown, i: number, limits: InputLimits): NewItem {
  const at = `items[${i}]`;
  if (typeof raw !== "object" || raw === null) {
    throw new ApiError(400, "bad_json_shape", `${at} must be an object`);
  }
  const o = raw as Record<string, unknown>;
  if (typeof o.id !== "string" || !o.id || o.id.length > 200) {
    throw new ApiError(400, "bad_item", `${at}.id must be a string of 1-200 characters`);
  }
  let pixels: Uint8Array;
  if (typeof o.image === "string") {
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64(o.image.replace(/^data:[^,]*,/, ""));
    } catch {
      throw new ApiError(400, "bad_base64", `${at}.image is not valid base64`);
    }
    pixels = toBytes(imageToInput(bytes, `${at}.image`, limits, "auto"));
  } else if (Array.isArray(o.pixels)) {
    if (
      o.pixels.length !== PIXELS ||
      !o.pixels.every((v) => typeof v === "number" && v >= 0 && v <= 255)
    ) {
      throw new ApiError(422, "bad_pixels", `${at}.pixels must be ${PIXELS} numbers in 0..255`);
    }
    pixels = Uint8Array.from(o.pixels as number[], (v) => Math.round(v));
  } else {
    throw new ApiError(
      400,
      "bad_item",
      `${at} needs "image" (base64 PNG/JPEG) or "pixels" (${PIXELS} numbers)`,
    );
  }
  return { id: o.id, pixels, metadata: o.metadata };
}

/** The admin routes' entries: in the document always, as it says how to enable them. */
export function documentGalleryAdmin(app: Api): void {
  app.openAPIRegistry.registerPath(galleryAddRoute);
  app.openAPIRegistry.registerPath(galleryRemoveRoute);
}

/** The admin routes' handlers on `app`, which puts them behind the bearer check (app.ts). */
export function galleryAdminRoutes(app: Api, deps: GalleryRouteDeps): void {
  const unlisted = { document: false }; // documentGalleryAdmin() lists them
  defineRoute(app, galleryAddRoute, async (c) => {
    const g = need(deps.handle);
    if (mediaType(c.req.header("content-type")) !== "application/json") {
      throw new ApiError(415, "unsupported_media_type", 'Send application/json {"items": [...]}');
    }
    const doc = parseJsonBody(await readBody(c.req.raw, deps.limits.maxBodyBytes));
    if (!Array.isArray(doc.items) || doc.items.length === 0) {
      throw new ApiError(400, "bad_json_shape", '"items" must be a non-empty array');
    }
    if (doc.items.length > MAX_ADD) {
      throw new ApiError(
        413,
        "too_many_items",
        `"items" holds ${doc.items.length}; at most ${MAX_ADD} per request`,
      );
    }
    const items = doc.items.map((it, i) => parseItem(it, i, deps.limits));
    await deps.withModel(() => g.add(items));
    return c.json({ added: items.map((it) => it.id), gallery: g.status() }, 201);
  }, unlisted);
  defineRoute(app, galleryRemoveRoute, (c) => {
    const { id } = c.req.param();
    if (!need(deps.handle).remove(id)) {
      throw new ApiError(404, "no_item", `No gallery item ${JSON.stringify(id)}`);
    }
    return c.json({ removed: id });
  }, unlisted);
}
