/**
 * The publisher's half of issue "latents users can keep": when a new version is published
 * while another is active, both models encode the same held-out images (the candidate
 * manifest's evaluation split, the Fashion-MNIST test images, unless told otherwise), a map
 * from the active version's mu to the candidate's is fitted and measured (bundle/latent_fit.ts),
 * and written into the candidate's bundle as latent-translation.json, listed in its manifest
 * (role "latent-translation"), so the server can translate latents stored under the old
 * version. Runs on the registry's temporary copy of the candidate, before it is verified.
 */
import {
  encodeSet,
  type Graph,
  type GraphRuntime,
  LATENT_TRANSLATION_FILE,
  LATENT_TRANSLATION_FORMAT,
  LATENT_TRANSLATION_ROLE,
  latentSpaceOf,
  type LatentTranslation,
  type Manifest,
  openGraphs,
  servingNames,
} from "../bundle/mod.ts";
import { fitTranslation } from "../bundle/latent_fit.ts";
import { addBundleFile } from "./bundle_add.ts";
import { PIXELS } from "../common/labels.ts";
import { loadFashionMnist, resolveDataDir } from "./data.ts";

export interface TranslationOptions {
  /** Directory with the Fashion-MNIST IDX files (default: FASHION_MNIST_DIR or the system copy). */
  dataDir?: string;
  /**
   * Held-out images used: the first this many of the evaluation split. They are all judged on
   * when the map is fitted on training images (fitImages > 0), else half fit and half judge.
   */
  images?: number;
  /**
   * Training images the map is fitted on (the first this many; default FIT_IMAGES); 0 fits on
   * half of the held-out images instead. More fitting images are what lift the RBF map's
   * neighbour share (docs/latents.md).
   */
  fitImages?: number;
  log?: (line: string) => void;
}

/** mu of `dir`'s model on n images (n x 784 uint8), in batches. */
async function encodeMu(
  dir: string,
  manifest: Manifest,
  runtime: GraphRuntime<Graph>,
  pixels: Uint8Array,
  n: number,
): Promise<Float32Array> {
  const graphs = await openGraphs(dir, { ...manifest, decoder: null }, runtime);
  try {
    return (await encodeSet(graphs.model, servingNames(manifest), pixels, n)).mu;
  } finally {
    await graphs.model.release();
  }
}

/** Training images the map is fitted on by default. */
export const FIT_IMAGES = 20000;

/**
 * The images the map is fitted and judged on: `fit` training images first (none when fitting
 * on held-out images), then `n` held-out images of the evaluation split the candidate names.
 */
function imagesFor(
  manifest: Manifest,
  opts: TranslationOptions,
): { pixels: Uint8Array; fit: number; n: number; split: string } {
  const evaluation = (manifest.data as { evaluation?: { split?: string } }).evaluation;
  const split = evaluation?.split ?? "test";
  const data = loadFashionMnist(resolveDataDir(opts.dataDir), { strictCounts: false });
  const set = split === "train" ? data.train : data.test;
  const n = Math.min(opts.images ?? set.count, set.count);
  // Fitting on training images needs a held-out split that is not the training split.
  const fit = split === "train" ? 0 : Math.min(opts.fitImages ?? FIT_IMAGES, data.train.count);
  const pixels = new Uint8Array((fit + n) * PIXELS);
  pixels.set(data.train.images.subarray(0, fit * PIXELS), 0);
  pixels.set(set.images.subarray(0, n * PIXELS), fit * PIXELS);
  return { pixels, fit, n, split };
}

/**
 * Fits the map from the bundle in `activeDir` to the candidate in `candidateDir`, writes it
 * into the candidate and adds it to the candidate's manifest. Returns what was written.
 */
export async function addLatentTranslation(
  candidateDir: string,
  candidate: Manifest,
  activeDir: string,
  active: Manifest,
  runtime: GraphRuntime<Graph>,
  opts: TranslationOptions = {},
): Promise<LatentTranslation> {
  const t0 = performance.now();
  const { pixels, fit: fitN, n, split } = imagesFor(candidate, opts);
  const total = fitN + n;
  const from = await encodeMu(activeDir, active, runtime, pixels, total);
  const to = await encodeMu(candidateDir, candidate, runtime, pixels, total);
  const fit = fitTranslation(from, active.latentSize, to, candidate.latentSize, total, {
    // The half keeps the floor in fitTranslation at exactly fitN.
    fitShare: fitN > 0 ? (fitN + 0.5) / total : 0.5,
  });
  const t: LatentTranslation = {
    format: LATENT_TRANSLATION_FORMAT,
    from: {
      name: active.name,
      version: active.version,
      space: latentSpaceOf(active),
      latentSize: active.latentSize,
    },
    to: {
      name: candidate.name,
      version: candidate.version,
      space: latentSpaceOf(candidate),
      latentSize: candidate.latentSize,
    },
    method: fit.best.method,
    matrix: fit.best.matrix.map((r) => r.map((v) => +v.toPrecision(9))),
    bias: fit.best.bias.map((v) => +v.toPrecision(9)),
    ...(fit.best.kernel
      ? {
        kernel: {
          gamma: fit.best.kernel.gamma,
          centres: fit.best.kernel.centres,
          weights: fit.best.kernel.weights.map((r) => r.map((v) => +v.toPrecision(9))),
        },
      }
      : {}),
    fit: {
      images: {
        split,
        count: n,
        fitCount: fit.fitCount,
        evalCount: fit.evalCount,
        fitSplit: fitN > 0 ? "train" : split,
      },
      k: 10,
      r2: fit.best.r2,
      neighbours: fit.best.neighbours,
      untranslatedNeighbours: fit.untranslatedNeighbours,
      tried: fit.tried,
    },
    created: new Date().toISOString(),
  };
  await writeTranslation(candidateDir, t);
  const pct = (v: number | null) => (v === null ? "n/a" : `${(100 * v).toFixed(1)}%`);
  opts.log?.(
    `latent translation ${active.version} -> ${candidate.version}: fitted on ${fit.fitCount} ` +
      `${fitN > 0 ? "train" : split} images, judged on ${fit.evalCount} ${split} images, in ${
        Math.round(performance.now() - t0)
      } ms: ` +
      fit.tried.map((q) => `${q.method} R² ${q.r2.toFixed(3)}, 10-NN kept ${pct(q.neighbours)}`)
        .join("; ") +
      `; untranslated 10-NN kept ${pct(fit.untranslatedNeighbours)}; stored ${fit.best.method}`,
  );
  return t;
}

/** Writes the map into the candidate bundle and lists it (sha256, size) in its manifest. */
async function writeTranslation(candidateDir: string, t: LatentTranslation): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(t) + "\n");
  await addBundleFile(candidateDir, LATENT_TRANSLATION_ROLE, LATENT_TRANSLATION_FILE, bytes);
}
