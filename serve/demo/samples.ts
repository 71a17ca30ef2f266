/**
 * The active bundle's sample images (samples.json, bundle/samples.ts) for the demo page's
 * clickable examples: GET /v1/models/active/samples lists them with their class names, and
 * GET /v1/models/active/samples/<i> serves one as the 28x28 grey PNG the model would see.
 * Parsed once per loaded model; a bundle without samples answers 404.
 */
import type { Context } from "hono";
import { readFile } from "node:fs/promises";
import {
  bundleFile,
  decodeProbePixels,
  type SampleSet,
  validateSamples,
} from "../../bundle/mod.ts";
import { encodeGreyPng } from "../../common/image_codec.ts";
import { IMAGE_SIZE } from "../../common/labels.ts";
import { ApiError } from "../errors.ts";
import type { LoadedModel, ModelSlot } from "../inference/mod.ts";
import { NoModelError } from "../inference/slot.ts";
import { type Api, defineRoute } from "../routes/common.ts";
import { sampleRoute, SAMPLES_PATH, samplesRoute } from "./openapi.ts";

/** Registers the two sample routes (defined in ./openapi.ts) on `app`. */
export function sampleRoutes(app: Api, slot: ModelSlot): void {
  const sets = new WeakMap<LoadedModel, Promise<SampleSet | null>>();
  const samplesOf = (model: LoadedModel) => {
    let p = sets.get(model);
    if (!p) {
      p = (async () => {
        if (!model.manifest.files.some((f) => f.role === "samples")) return null;
        const raw = JSON.parse(
          await readFile(bundleFile(model.dir, model.manifest, "samples"), "utf8"),
        );
        return validateSamples(raw, model.labels.length);
      })();
      p.catch(() => sets.delete(model));
      sets.set(model, p);
    }
    return p;
  };
  const withSamples = async (c: Context, f: (m: LoadedModel, s: SampleSet) => Response) => {
    try {
      return await slot.use(async (model) => {
        const set = await samplesOf(model);
        if (!set) {
          throw new ApiError(
            404,
            "no_samples",
            `Model ${model.name}@${model.version} carries no sample images`,
          );
        }
        c.header("X-Model-Name", model.name);
        c.header("X-Model-Version", model.version);
        c.header("Cache-Control", "no-cache");
        return f(model, set);
      });
    } catch (e) {
      if (e instanceof NoModelError) throw new ApiError(503, "not_ready", e.message);
      throw e;
    }
  };
  defineRoute(app, samplesRoute, (c) =>
    withSamples(c, (model, set) =>
      c.json({
        model: { name: model.name, version: model.version },
        samples: set.samples.map((s, i) => ({
          index: i,
          label: s.label,
          name: model.labels[s.label],
          url: `${SAMPLES_PATH}/${i}`,
        })),
      })));
  defineRoute(app, sampleRoute, (c) => {
    const { index } = c.req.param();
    const m = /^(\d{1,6})$/.exec(index);
    return withSamples(c, (model, set) => {
      const s = m ? set.samples[Number(m[1])] : undefined;
      if (!s) {
        throw new ApiError(
          404,
          "not_found",
          `Model ${model.version} has no sample ${JSON.stringify(index)}`,
        );
      }
      const png = encodeGreyPng(decodeProbePixels(s.pixels), IMAGE_SIZE, IMAGE_SIZE);
      return c.body(png as Uint8Array<ArrayBuffer>, 200, { "Content-Type": "image/png" });
    });
  });
}
