/**
 * A set of uint8 images run through a bundle's serving graph in batches: the one loop behind
 * the publish gate's scores, the novelty calibration and the novelty study. Each batch is
 * normalised to [0, 1] (common/preprocess.ts, as the server does), fed as NCHW [n, 1, 28, 28]
 * and its outputs handed on at the batch's offset, so a caller that only needs per-image
 * results never holds the whole set's outputs.
 */
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import type { Graph } from "./accept.ts";
import type { Manifest } from "./manifest.ts";

/** The serving graph's input and output tensor names (a manifest's, or bundle/tensors.ts's). */
export interface ServingNames {
  input: string;
  probabilities: string;
  mu: string;
  logvar: string;
}

/** The serving graph's outputs on a run of images, row-major: count x K and count x L. */
export interface EncodedImages {
  probabilities: Float32Array;
  mu: Float32Array;
  logvar: Float32Array;
  count: number;
}

/** One batch: its outputs, its first image's index in the set, and its normalised pixels. */
export interface EncodedBatch extends EncodedImages {
  start: number;
  images: Float32Array;
}

/** The images a batch of a set run holds at the most (about 1.6 MB of input). */
export const ENCODE_BATCH = 500;

/** The tensor names `manifest` declares for its serving graphs. */
export function servingNames(manifest: Manifest): ServingNames {
  const o = manifest.outputs;
  return {
    input: manifest.input.name,
    probabilities: o.probabilities.name,
    mu: o.mu.name,
    logvar: o.logvar.name,
  };
}

/** Runs `graph` on `count` images of `images` (784 bytes each), calling `each` per batch. */
export async function encodeEach(
  graph: Pick<Graph, "run">,
  names: ServingNames,
  images: Uint8Array,
  count: number,
  each: (batch: EncodedBatch) => void | Promise<void>,
  batch = ENCODE_BATCH,
): Promise<void> {
  for (let start = 0; start < count; start += batch) {
    const n = Math.min(batch, count - start);
    const x = normalizePixels(images.subarray(start * PIXELS, (start + n) * PIXELS));
    const r = await graph.run({
      [names.input]: { data: x, dims: [n, 1, IMAGE_SIZE, IMAGE_SIZE] },
    });
    await each({
      start,
      count: n,
      images: x,
      probabilities: r[names.probabilities].data,
      mu: r[names.mu].data,
      logvar: r[names.logvar].data,
    });
  }
}

/** Runs `graph` on `count` images and returns all their outputs. */
export async function encodeSet(
  graph: Pick<Graph, "run">,
  names: ServingNames,
  images: Uint8Array,
  count: number,
  batch = ENCODE_BATCH,
): Promise<EncodedImages> {
  const out = {
    probabilities: new Float32Array(0),
    mu: new Float32Array(0),
    logvar: new Float32Array(0),
    count,
  };
  // Widths (K, L) come from the first batch's outputs, so a caller needs no manifest.
  const place = (key: "probabilities" | "mu" | "logvar", b: EncodedBatch) => {
    const width = b[key].length / b.count;
    if (out[key].length === 0) out[key] = new Float32Array(count * width);
    out[key].set(b[key], b.start * width);
  };
  await encodeEach(graph, names, images, count, (b) => {
    place("probabilities", b);
    place("mu", b);
    place("logvar", b);
  }, batch);
  return out;
}
