/**
 * POST /v1/latent/translate: latents a client stored under an earlier model version (named by
 * their latent space id, which every latent the service returns carries) turned into the
 * active model's space through the bundles' latent translations (translate.ts).
 *   {"from": "<space id>", "latents": [[L numbers], ...]}
 *   -> {"model", "latentSpace", "from", "path": [{from, to, method, r2, neighbours}], "latents"}
 * No map, or a map below the neighbour bound, is an error naming the link; nothing is guessed.
 * The route's definition, which /openapi.json documents, is in ./openapi.ts.
 */
import type { Context } from "hono";
import { latentSpaceOf } from "../../bundle/mod.ts";
import { ApiError } from "../errors.ts";
import type { LoadedModel, ModelSlot } from "../inference/mod.ts";
import { type InputLimits, readBody } from "../inputs.ts";
import { type Api, defineRoute } from "../routes/common.ts";
import { MAX_TRANSLATE, translateRoute } from "./openapi.ts";
import { applyPath, describePath, TranslationError, type Translator } from "./translate.ts";

/** The id of the latent space the model's latents live in. */
export function spaceOf(m: LoadedModel): string {
  return latentSpaceOf(m.manifest);
}

/**
 * A JSON answer that names the model and the latent space it answered in, in the body
 * (model, latentSpace) and the headers (X-Model-Version, X-Latent-Space).
 */
export function latentJson(c: Context, m: LoadedModel, body: Record<string, unknown>): Response {
  c.header("X-Model-Version", m.version);
  c.header("X-Latent-Space", spaceOf(m));
  return c.json({ model: { name: m.name, version: m.version }, latentSpace: spaceOf(m), ...body });
}

/** A TranslationError as the API's error (404 no map, 422 map below the bound). */
export function translationApiError(e: unknown): unknown {
  if (!(e instanceof TranslationError)) return e;
  return new ApiError(e.kind === "no_translation" ? 404 : 422, e.kind, e.message);
}

/** Parses n x size finite numbers from a JSON array of arrays; `field` names it in errors. */
export function latentRows(raw: unknown, size: number, field: string, max: number): Float32Array {
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new ApiError(400, "bad_json_shape", `"${field}" must be a non-empty array of latents`);
  }
  if (raw.length > max) {
    throw new ApiError(
      413,
      "too_many_latents",
      `"${field}" holds ${raw.length} latents; at most ${max}`,
    );
  }
  const out = new Float32Array(raw.length * size);
  raw.forEach((row, i) => {
    if (!Array.isArray(row) || row.length !== size) {
      throw new ApiError(
        422,
        "bad_latent_length",
        `${field}[${i}] must be ${size} numbers (the latent size of that space), got ${
          Array.isArray(row) ? row.length : typeof row
        }`,
      );
    }
    row.forEach((v, j) => {
      if (typeof v !== "number" || !Number.isFinite(Math.fround(v))) {
        throw new ApiError(
          422,
          "bad_latent_value",
          `${field}[${i}][${j}] is ${JSON.stringify(v)}; values must be finite`,
        );
      }
      out[i * size + j] = v;
    });
  });
  return out;
}

export interface LatentRouteDeps {
  slot: ModelSlot;
  translator: Translator;
  limits: InputLimits;
  withModel: <T>(fn: (m: LoadedModel) => Promise<T>) => Promise<T>;
}

/** Registers POST /v1/latent/translate (defined in ./openapi.ts) on `app`. */
export function latentRoutes(app: Api, deps: LatentRouteDeps): void {
  defineRoute(app, translateRoute, async (c) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "application/json") {
      throw new ApiError(
        415,
        "unsupported_media_type",
        `/v1/latent/translate takes application/json {"from": "<space>", "latents": [[...]]}, got ${
          type || "no Content-Type"
        }`,
      );
    }
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(
        new TextDecoder().decode(await readBody(c.req.raw, deps.limits.maxBodyBytes)),
      );
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw new ApiError(400, "bad_json", `The body is not valid JSON (${(e as Error).message})`);
    }
    if (typeof doc !== "object" || doc === null || typeof doc.from !== "string" || !doc.from) {
      throw new ApiError(
        400,
        "bad_json_shape",
        '"from" must name the latent space the latents came from',
      );
    }
    const from = doc.from;
    return await deps.withModel(async (m) => {
      let path;
      try {
        path = await deps.translator.path(m.dir, m.manifest, from);
      } catch (e) {
        throw translationApiError(e);
      }
      const x = latentRows(doc.latents, path.fromSize, "latents", MAX_TRANSLATE);
      const n = x.length / path.fromSize, L = m.latentSize;
      const y = applyPath(path, x, n);
      const latents = Array.from(
        { length: n },
        (_, i) => Array.from(y.subarray(i * L, (i + 1) * L)),
      );
      return latentJson(c, m, { from, path: describePath(path), latents });
    });
  });
}
