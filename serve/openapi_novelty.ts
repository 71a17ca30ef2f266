/**
 * The OpenAPI pieces of novelty (serve/novelty.ts): the `novelty` object every prediction and
 * latent carries, and the `abstain` parameter of /v1/classify. Kept apart so openapi.ts only
 * references them.
 */
type Json = Record<string, unknown>;

export const abstainParam: Json = {
  name: "abstain",
  in: "query",
  schema: { type: "boolean", default: false },
  description:
    'true: a prediction whose image is out of distribution gets label null and reason "out_of_distribution" (probabilities stay). Never abstains when the model has no novelty calibration.',
};

export const noveltySchemas: Record<string, Json> = {
  Novelty: {
    type: "object",
    required: ["available", "score", "percentile", "outOfDistribution"],
    description:
      "How unlike the model's training images the input is: the smallest Mahalanobis distance of its latent code and image statistics to the class Gaussians fitted at export. percentile: share (0..100) of held-out training images scoring at most this; outOfDistribution: above the threshold (by default their 95th percentile; the server's --novelty-percentile changes it). available is false, and the rest null, when the bundle carries no calibration.",
    properties: {
      available: { type: "boolean" },
      score: { type: ["number", "null"] },
      percentile: { type: ["number", "null"], minimum: 0, maximum: 100 },
      outOfDistribution: { type: ["boolean", "null"] },
    },
  },
};

export const noveltyMetricsDoc =
  " Novelty: novelty_percentile (histogram) and novelty_out_of_distribution_total, by model name and version.";
