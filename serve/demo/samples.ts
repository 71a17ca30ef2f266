/**
 * The active bundle's sample images (samples.json, bundle/samples.ts) for the demo page's
 * clickable examples: GET /v1/models/active/samples lists them with their class names, and
 * GET /v1/models/active/samples/<i> serves one as the 28x28 grey PNG the model would see.
 * Parsed once per loaded model (./bundle_json.ts); a bundle without samples answers 404.
 */
import { decodeProbePixels, validateSamples } from "../../bundle/mod.ts";
import { encodeGreyPng } from "../../common/image_codec.ts";
import { IMAGE_SIZE } from "../../common/labels.ts";
import { ApiError } from "../errors.ts";
import type { ModelSlot } from "../inference/mod.ts";
import { type Api, defineRoute } from "../routes/common.ts";
import { bundleJson } from "./bundle_json.ts";
import { sampleRoute, SAMPLES_PATH, samplesRoute } from "./openapi.ts";

/** Registers the two sample routes (defined in ./openapi.ts) on `app`. */
export function sampleRoutes(app: Api, slot: ModelSlot): void {
  const withSamples = bundleJson(slot, {
    role: "samples",
    check: (raw, model) => validateSamples(raw, model.labels.length),
    missing: { code: "no_samples", says: "carries no sample images" },
  });
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
