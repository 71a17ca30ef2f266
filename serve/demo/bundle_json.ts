/**
 * A JSON file of the active bundle for the demo's routes (samples.json, latent-map.json): read
 * and checked once per loaded model (its sha256 was verified when the model loaded), answered
 * with the model named in the headers. A bundle without the file is a 404 naming the model; an
 * empty slot is a 503.
 */
import type { Context } from "hono";
import { readFile } from "node:fs/promises";
import { bundleFile } from "../../bundle/mod.ts";
import { ApiError } from "../errors.ts";
import type { LoadedModel, ModelSlot } from "../inference/mod.ts";
import { NoModelError } from "../inference/slot.ts";

export interface BundleJsonSpec<T> {
  /** The file's role in the manifest. */
  role: string;
  /** Checks the parsed file; a malformed one is the bundle's fault (a 500), not the client's. */
  check: (raw: unknown, model: LoadedModel) => T;
  /** The 404's code and what it says of the model, e.g. "carries no sample images". */
  missing: { code: string; says: string };
}

/** Runs `answer` on the active model's file, parsed; see the module comment for the errors. */
export function bundleJson<T>(slot: ModelSlot, spec: BundleJsonSpec<T>) {
  const parsed = new WeakMap<LoadedModel, Promise<T | null>>();
  const read = (model: LoadedModel) => {
    let p = parsed.get(model);
    if (!p) {
      p = (async () => {
        if (!model.manifest.files.some((f) => f.role === spec.role)) return null;
        const path = bundleFile(model.dir, model.manifest, spec.role);
        return spec.check(JSON.parse(await readFile(path, "utf8")), model);
      })();
      p.catch(() => parsed.delete(model)); // a failed read is retried, not cached
      parsed.set(model, p);
    }
    return p;
  };
  return async (c: Context, answer: (m: LoadedModel, value: T) => Response) => {
    try {
      return await slot.use(async (model) => {
        const value = await read(model);
        if (value === null) {
          const { code, says } = spec.missing;
          throw new ApiError(404, code, `Model ${model.name}@${model.version} ${says}`);
        }
        c.header("X-Model-Name", model.name);
        c.header("X-Model-Version", model.version);
        c.header("Cache-Control", "no-cache");
        return answer(model, value);
      });
    } catch (e) {
      if (e instanceof NoModelError) throw new ApiError(503, "not_ready", e.message);
      throw e;
    }
  };
}
