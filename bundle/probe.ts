/**
 * The probe: a few images whose outputs the exporter recorded in the manifest. Rerunning them
 * on the runtime that will serve the bundle proves that the runtime, the preprocessing and the
 * model file are the ones that were exported.
 */
import { argmax } from "../common/argmax.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { PIXELS } from "../common/labels.ts";
import { type Manifest, MANIFEST_FILE } from "./manifest.ts";
import { BundleError } from "./read.ts";
import { decodeBase64, encodeBase64 } from "../common/base64.ts";

/** Runs the bundle's encoder+classifier on n images (NCHW [n,1,28,28] float in [0,1]). */
export type ProbeRunner = (
  images: Float32Array,
  n: number,
) => Promise<{ probabilities: Float32Array; mu: Float32Array }>;

export interface ProbeReport {
  cases: number;
  /** Largest |actual - recorded| over all probabilities and mu values. */
  maxAbsDiff: number;
}

/** The probe images as the serving graph's input: n x 784 floats in [0, 1]. */
function probeImages(manifest: Manifest, dir: string): Float32Array {
  const cases = manifest.probe.cases;
  const images = new Float32Array(cases.length * PIXELS);
  cases.forEach((c, i) => {
    const px = decodeProbePixels(c.pixels);
    if (px.length !== PIXELS) {
      throw new BundleError(
        dir,
        `${MANIFEST_FILE} field "probe.cases[${i}].pixels"`,
        `decodes to ${px.length} bytes, expected ${PIXELS}`,
      );
    }
    normalizePixels(px, images.subarray(i * PIXELS, (i + 1) * PIXELS));
  });
  return images;
}

/** Row `i` of `actual` (rows of `width`) against `recorded`; returns the largest difference. */
function compareRow(
  dir: string,
  i: number,
  what: string,
  actual: Float32Array,
  width: number,
  recorded: number[],
  tolerance: number,
): number {
  let max = 0;
  for (let j = 0; j < width; j++) {
    const d = Math.abs(actual[i * width + j] - recorded[j]);
    // NaN must fail too, hence the negated comparison.
    if (!(d <= tolerance)) {
      throw new BundleError(
        dir,
        `probe case ${i}`,
        `${what}[${j}] is ${actual[i * width + j]}, the bundle recorded ${
          recorded[j]
        } (difference ${d.toExponential(2)} exceeds tolerance ${tolerance})`,
      );
    }
    max = Math.max(max, d);
  }
  return max;
}

/**
 * Feeds the manifest's probe images through `run` and checks that the outputs reproduce the
 * values recorded at export within `probe.tolerance`, and that every top label is the same.
 * A failure means the runtime, the preprocessing or the model file differs from what was
 * exported. `dir` only labels the error message; `probe` is the int8 graph's own probe when
 * that graph is checked (bundle/precision.ts).
 */
export async function checkProbe(
  manifest: Manifest,
  run: ProbeRunner,
  dir = `${manifest.name}@${manifest.version}`,
  probe: Manifest["probe"] = manifest.probe,
): Promise<ProbeReport> {
  const { cases, tolerance } = probe;
  const n = cases.length;
  const K = manifest.labels.length;
  const L = manifest.latentSize;
  const images = probeImages(manifest, dir);
  let out: { probabilities: Float32Array; mu: Float32Array };
  try {
    out = await run(images, n);
  } catch (e) {
    throw new BundleError(
      dir,
      "probe",
      `the model failed to run on the probe images (${(e as Error).message})`,
    );
  }
  const counts: [string, number, number][] = [
    ["probabilities", out.probabilities.length, n * K],
    ["mu values", out.mu.length, n * L],
  ];
  for (const [what, got, want] of counts) {
    if (got !== want) {
      throw new BundleError(
        dir,
        "probe",
        `the model returned ${got} ${what} for ${n} images, expected ${want}`,
      );
    }
  }
  let maxAbsDiff = 0;
  cases.forEach((c, i) => {
    const got = argmax(out.probabilities, i * K, K);
    if (got !== c.index) {
      throw new BundleError(
        dir,
        `probe case ${i}`,
        `top label is ${got} ("${manifest.labels[got]}"), the bundle recorded ${c.index} ("${
          manifest.labels[c.index]
        }")`,
      );
    }
    const dp = compareRow(
      dir,
      i,
      "probabilities",
      out.probabilities,
      K,
      c.probabilities,
      tolerance,
    );
    const dm = compareRow(dir, i, "mu", out.mu, L, c.mu, tolerance);
    maxAbsDiff = Math.max(maxAbsDiff, dp, dm);
  });
  return { cases: n, maxAbsDiff };
}

/** Decodes a probe case's base64 pixels to 784 bytes. Works in Deno, Node and browsers. */
export function decodeProbePixels(b64: string): Uint8Array {
  return decodeBase64(b64);
}

export function encodeProbePixels(px: Uint8Array): string {
  return encodeBase64(px);
}
