/**
 * The sample images a bundle may carry (role "samples", samples.json): a few held-out images
 * per class, as the 28x28 model input, for the demo page's clickable examples. The trainer
 * writes them, the server serves them as PNGs; this is the format's one definition.
 */
import { PIXELS } from "../common/labels.ts";
import { decodeBase64 } from "../common/base64.ts";

export const SAMPLES_FILE = "samples.json";
export const SAMPLES_FORMAT = "latent-edge/samples@1";
export const SAMPLES_PER_CLASS = 3;

export interface SampleSet {
  format: typeof SAMPLES_FORMAT;
  /** label: class index; pixels: 784 bytes base64 (row-major, light on dark). */
  samples: { label: number; pixels: string }[];
  source?: string;
}

/** Up to `perClass` rows of each class, in split order: the first held-out images of each. */
export function pickSampleRows(
  labels: ArrayLike<number>,
  classes: number,
  perClass: number,
): number[] {
  const taken = new Array<number>(classes).fill(0);
  const rows: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (taken[labels[i]] < perClass) taken[labels[i]]++, rows.push(i);
  }
  return rows.sort((a, b) => labels[a] - labels[b] || a - b);
}

export function validateSamples(raw: unknown, classes: number): SampleSet {
  const fail = (why: string): never => {
    throw new Error(`Cannot use ${SAMPLES_FILE}: ${why}`);
  };
  if (typeof raw !== "object" || raw === null) fail("it is not a JSON object");
  const s = raw as SampleSet;
  if (s.format !== SAMPLES_FORMAT) fail(`format is ${JSON.stringify(s.format)}`);
  if (!Array.isArray(s.samples)) fail('"samples" is not a list');
  s.samples.forEach((e, i) => {
    if (!Number.isInteger(e?.label) || e.label < 0 || e.label >= classes) {
      fail(`samples[${i}].label is not a class index 0..${classes - 1}`);
    }
    if (typeof e.pixels !== "string" || base64Length(e.pixels) !== PIXELS) {
      fail(`samples[${i}].pixels is not ${PIXELS} bytes of base64`);
    }
  });
  return s;
}

/** Bytes a base64 string decodes to, or -1 when it is not base64. */
function base64Length(b64: string): number {
  try {
    return decodeBase64(b64).length;
  } catch {
    return -1;
  }
}
