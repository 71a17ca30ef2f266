/**
 * POST /v1/classify and POST /v1/latent: images in (serve/inputs.ts), per image the label and
 * probabilities, or the latent code and optional samples, with its novelty. Route, query
 * validation and OpenAPI entry come from the one route definition of each (imageRoute).
 */
import { z } from "@hono/zod-openapi";
import { readImageBatch } from "../inputs.ts";
import type { NoveltyField } from "../novelty.ts";
import { normalSource, sampleLatent } from "../sampling.ts";
import { spaceOf } from "../latents/routes.ts";
import {
  abstainQuery,
  type Api,
  defineRoute,
  imageRoute,
  intQuery,
  intValue,
  modelRef,
  modeOf,
  preprocessQuery,
  type RouteDeps,
  setModelHeaders,
} from "./common.ts";
import { ClassifyResponseSchema, LatentResponseSchema } from "./schemas.ts";
import { argmax } from "../../common/argmax.ts";

/** a[from..to) as plain numbers for JSON: a loop, several times cheaper than Array.from(view). */
function numbers(a: Float32Array, from: number, to: number): number[] {
  const out = new Array<number>(to - from);
  for (let i = from; i < to; i++) out[i - from] = a[i];
  return out;
}

function classifyRoute(deps: RouteDeps) {
  return imageRoute(deps.limits, {
    path: "/v1/classify",
    summary: "Classify images",
    description:
      "Predicted label, confidence, the probabilities of all classes, the latent code and the novelty of the image, per image in input order.",
    query: z.object({ preprocess: preprocessQuery, abstain: abstainQuery }),
    single: false,
    ok: {
      description: "Predictions",
      content: { "application/json": { schema: ClassifyResponseSchema } },
    },
  });
}

function latentRoute(deps: RouteDeps) {
  return imageRoute(deps.limits, {
    path: "/v1/latent",
    summary: "Latent codes of images",
    query: z.object({
      preprocess: preprocessQuery,
      samples: intQuery("samples", 0, deps.config.maxSamples, {
        default: 0,
        description: "Reparameterised samples z = mu + exp(logvar/2) * eps per image.",
      }),
      seed: intQuery("seed", 0, 0xffffffff, {
        description: "Seed for the samples; the response echoes the seed used.",
      }),
    }),
    single: false,
    ok: {
      description: "Latent codes",
      content: { "application/json": { schema: LatentResponseSchema } },
    },
  });
}

export function classifyRoutes(app: Api, deps: RouteDeps): void {
  const { limits, metrics, withModel, judgeNovelty } = deps;
  defineRoute(app, classifyRoute(deps), async (c, q) => {
    const abstain = q.abstain === "true" || q.abstain === "1";
    const batch = await readImageBatch(c.req.raw, limits, modeOf(q.preprocess));
    return await withModel(async (m) => {
      const out = await m.encode(batch.images, batch.count);
      metrics.images.inc({ route: "/v1/classify" }, batch.count);
      const novelty = judgeNovelty(m, out, batch.images);
      const K = m.labels.length, L = m.latentSize, space = spaceOf(m);
      const predictions = [];
      for (let i = 0; i < out.count; i++) {
        const index = argmax(out.probabilities, i * K, K);
        const refuse = abstain && novelty[i].outOfDistribution === true;
        predictions.push({
          label: refuse ? null : m.labels[index],
          ...(refuse ? { reason: "out_of_distribution" as const } : {}),
          index,
          confidence: out.probabilities[i * K + index],
          probabilities: numbers(out.probabilities, i * K, (i + 1) * K),
          latent: {
            space,
            mu: numbers(out.mu, i * L, (i + 1) * L),
            logvar: numbers(out.logvar, i * L, (i + 1) * L),
          },
          novelty: novelty[i],
        });
      }
      setModelHeaders(c, m);
      return c.json({ model: modelRef(m), latentSpace: space, predictions }, 200);
    });
  });

  defineRoute(app, latentRoute(deps), async (c, q) => {
    const samples = intValue(q.samples) ?? 0;
    const seedParam = intValue(q.seed);
    const batch = await readImageBatch(c.req.raw, limits, modeOf(q.preprocess));
    return await withModel(async (m) => {
      const out = await m.encode(batch.images, batch.count);
      metrics.images.inc({ route: "/v1/latent" }, batch.count);
      const novelty = judgeNovelty(m, out, batch.images);
      const L = m.latentSize;
      // Echo the seed so any response can be reproduced, even when the client sent none.
      const seed = seedParam ?? Math.floor(Math.random() * 0x100000000);
      const normal = normalSource(seed);
      const latents = [];
      for (let i = 0; i < out.count; i++) {
        const mu = out.mu.subarray(i * L, (i + 1) * L),
          logvar = out.logvar.subarray(i * L, (i + 1) * L);
        const entry: {
          space: string;
          mu: number[];
          logvar: number[];
          novelty: NoveltyField;
          samples?: number[][];
        } = {
          space: spaceOf(m),
          mu: Array.from(mu),
          logvar: Array.from(logvar),
          novelty: novelty[i],
        };
        if (samples > 0) entry.samples = sampleLatent(mu, logvar, samples, normal);
        latents.push(entry);
      }
      setModelHeaders(c, m);
      const ref = { model: modelRef(m), latentSpace: spaceOf(m) };
      return c.json(samples > 0 ? { ...ref, seed, latents } : { ...ref, latents }, 200);
    });
  });
}
