/**
 * The latent translation a bundle may carry (role "latent-translation"): an affine map
 * y = matrix x + bias from the latent space of the version that was active when this bundle
 * was published (mu of the earlier model) into this bundle's own latent space, with the fit
 * quality measured on held-out images. The publisher writes it (trainer/publish.ts, fitted by
 * bundle/latent_fit.ts), the acceptance check validates it, and the server chains such maps
 * to translate stored latents (serve/latents/). This file is the format's one definition.
 */
import { readFile } from "node:fs/promises";
import type { Manifest } from "./manifest.ts";
import { BundleError, bundleFile } from "./read.ts";

export const LATENT_TRANSLATION_FILE = "latent-translation.json";
export const LATENT_TRANSLATION_FORMAT = "latent-edge/latent-translation@1";
export const LATENT_TRANSLATION_ROLE = "latent-translation";

/** The kinds of map the publisher fits (latent_fit.ts says how). */
export type MapMethod = "affine" | "procrustes" | "rbf";

/**
 * The non-linear part of an "rbf" map: y += weights phi(x), phi_c(x) = exp(-gamma |x - c|^2)
 * over the centres c (held-out latents of the earlier model).
 */
export interface KernelPart {
  gamma: number;
  /** m centres of from.latentSize numbers. */
  centres: number[][];
  /** to.latentSize rows of m numbers. */
  weights: number[][];
}

/** Quality of one fitted map on the evaluation images. */
export interface MapQuality {
  method: MapMethod;
  /** Coefficient of determination of the translated latents against fresh ones (all dims). */
  r2: number;
  /** Mean share of each image's k nearest neighbours preserved (see latent_fit.ts). */
  neighbours: number;
}

export interface SpaceRef {
  name: string;
  version: string;
  /** The latent space id (latentSpaceOf) of that version. */
  space: string;
  latentSize: number;
}

export interface LatentTranslation {
  format: typeof LATENT_TRANSLATION_FORMAT;
  from: SpaceRef;
  to: SpaceRef;
  method: MapMethod;
  /** to.latentSize rows of from.latentSize numbers. */
  matrix: number[][];
  bias: number[];
  /** Present for method "rbf". */
  kernel?: KernelPart;
  fit: {
    /** Which images: the manifest's evaluation split (or the publisher's flag). */
    images: {
      split: string;
      count: number;
      fitCount: number;
      evalCount: number;
      /** Where the fitting images came from ("train", or the held-out split itself). */
      fitSplit?: string;
    };
    k: number;
    r2: number;
    neighbours: number;
    /** The same measure with no translation at all (null when the sizes differ). */
    untranslatedNeighbours: number | null;
    tried: MapQuality[];
  };
  created: string;
}

/**
 * The id of the latent space a bundle's latents live in: the manifest's declared
 * `latentSpace` (a retrain declared compatible keeps its predecessor's id), else its version.
 */
export function latentSpaceOf(
  manifest: Pick<Manifest, "version"> & { latentSpace?: unknown },
): string {
  return typeof manifest.latentSpace === "string" && manifest.latentSpace
    ? manifest.latentSpace
    : manifest.version;
}

/** Applies the map to n latents (n x from.latentSize) and returns n x to.latentSize. */
export function translate(
  t: Pick<LatentTranslation, "matrix" | "bias" | "kernel">,
  x: ArrayLike<number>,
  n: number,
): Float32Array {
  const b = t.matrix.length, a = t.matrix[0].length;
  const out = new Float32Array(n * b);
  const k = t.kernel, m = k ? k.centres.length : 0;
  const phi = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < m; c++) {
      const cen = k!.centres[c];
      let s = 0;
      for (let j = 0; j < a; j++) s += (x[i * a + j] - cen[j]) ** 2;
      phi[c] = Math.exp(-k!.gamma * s);
    }
    for (let r = 0; r < b; r++) {
      const row = t.matrix[r];
      let s = t.bias[r];
      for (let c = 0; c < a; c++) s += row[c] * x[i * a + c];
      if (k) {
        const w = k.weights[r];
        for (let c = 0; c < m; c++) s += w[c] * phi[c];
      }
      out[i * b + r] = s;
    }
  }
  return out;
}

/**
 * Checks a parsed latent-translation.json against the bundle that carries it: it must map
 * into this very bundle's space and size, with finite numbers of the declared shapes.
 */
export function validateLatentTranslation(raw: unknown, manifest: Manifest): LatentTranslation {
  const fail = (why: string): never => {
    throw new Error(`Cannot use ${LATENT_TRANSLATION_FILE}: ${why}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail("it is not a JSON object");
  }
  const t = raw as LatentTranslation;
  if (t.format !== LATENT_TRANSLATION_FORMAT) fail(`format is ${JSON.stringify(t.format)}`);
  const ref = (r: SpaceRef | undefined, key: string) => {
    if (typeof r !== "object" || r === null) fail(`"${key}" is not an object`);
    for (const f of ["name", "version", "space"] as const) {
      if (typeof r![f] !== "string" || !r![f]) fail(`"${key}.${f}" is not a non-empty string`);
    }
    if (!Number.isInteger(r!.latentSize) || r!.latentSize < 1) {
      fail(`"${key}.latentSize" is not a size`);
    }
  };
  ref(t.from, "from");
  ref(t.to, "to");
  if (t.to.version !== manifest.version || t.to.latentSize !== manifest.latentSize) {
    fail(
      `it maps into ${t.to.version} (latent ${t.to.latentSize}), not this bundle ${manifest.version} (latent ${manifest.latentSize})`,
    );
  }
  if (t.method !== "affine" && t.method !== "procrustes" && t.method !== "rbf") {
    fail(`method is ${JSON.stringify(t.method)}`);
  }
  const isNums = (a: unknown, n: number) =>
    Array.isArray(a) && a.length === n && a.every((x) => typeof x === "number" && isFinite(x));
  if (!Array.isArray(t.matrix) || t.matrix.length !== t.to.latentSize) {
    fail(`"matrix" is not ${t.to.latentSize} rows`);
  }
  if (!t.matrix.every((r) => isNums(r, t.from.latentSize))) {
    fail(`"matrix" rows are not ${t.from.latentSize} finite numbers`);
  }
  if (!isNums(t.bias, t.to.latentSize)) fail(`"bias" is not ${t.to.latentSize} finite numbers`);
  if (t.method === "rbf") {
    const k = t.kernel;
    if (typeof k !== "object" || k === null) fail('method "rbf" needs "kernel"');
    if (!(typeof k!.gamma === "number" && k!.gamma > 0 && isFinite(k!.gamma))) {
      fail('"kernel.gamma" is not > 0');
    }
    if (!Array.isArray(k!.centres) || !k!.centres.every((c) => isNums(c, t.from.latentSize))) {
      fail(`"kernel.centres" are not rows of ${t.from.latentSize} finite numbers`);
    }
    const m = k!.centres.length;
    if (
      !Array.isArray(k!.weights) || k!.weights.length !== t.to.latentSize ||
      !k!.weights.every((w) => isNums(w, m))
    ) {
      fail(`"kernel.weights" is not ${t.to.latentSize} rows of ${m} finite numbers`);
    }
  }
  const fit = t.fit;
  if (typeof fit !== "object" || fit === null) fail('"fit" is not an object');
  if (typeof fit.r2 !== "number" || !isFinite(fit.r2)) fail('"fit.r2" is not a number');
  if (!(fit.neighbours >= 0 && fit.neighbours <= 1)) fail('"fit.neighbours" is not within [0, 1]');
  return t;
}

/**
 * The bundle's translation, read and validated, or null when it carries none. Part of the
 * acceptance check: a bundle with a malformed map is refused like one with a bad graph.
 */
export async function readLatentTranslation(
  dir: string,
  manifest: Manifest,
): Promise<LatentTranslation | null> {
  if (!manifest.files.some((f) => f.role === LATENT_TRANSLATION_ROLE)) return null;
  const path = bundleFile(dir, manifest, LATENT_TRANSLATION_ROLE);
  try {
    return validateLatentTranslation(JSON.parse(await readFile(path, "utf8")), manifest);
  } catch (e) {
    throw new BundleError(dir, LATENT_TRANSLATION_FILE, (e as Error).message);
  }
}
