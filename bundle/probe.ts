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
  const pixels = PIXELS;
  const images = new Float32Array(n * pixels);
  cases.forEach((c, i) => {
    const px = decodeProbePixels(c.pixels);
    if (px.length !== pixels) {
      throw new BundleError(
        dir,
        `${MANIFEST_FILE} field "probe.cases[${i}].pixels"`,
        `decodes to ${px.length} bytes, expected ${pixels}`,
      );
    }
    normalizePixels(px, images.subarray(i * pixels, (i + 1) * pixels));
  });
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
  if (out.probabilities.length !== n * K) {
    throw new BundleError(
      dir,
      "probe",
      `the model returned ${out.probabilities.length} probabilities for ${n} images, expected ${
        n * K
      }`,
    );
  }
  if (out.mu.length !== n * L) {
    throw new BundleError(
      dir,
      "probe",
      `the model returned ${out.mu.length} mu values for ${n} images, expected ${n * L}`,
    );
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
    const compare = (what: string, actual: Float32Array, width: number, recorded: number[]) => {
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
        maxAbsDiff = Math.max(maxAbsDiff, d);
      }
    };
    compare("probabilities", out.probabilities, K, c.probabilities);
    compare("mu", out.mu, L, c.mu);
  });
  return { cases: n, maxAbsDiff };
}

/** Decodes a probe case's base64 pixels to 784 bytes. Works in Deno, Node and browsers. */
export function decodeProbePixels(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function encodeProbePixels(px: Uint8Array): string {
  let s = "";
  for (let i = 0; i < px.length; i++) s += String.fromCharCode(px[i]);
  return btoa(s);
}
