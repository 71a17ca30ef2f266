/**
 * The sample images of a bundle (bundle/samples.ts): written by writeBundle for a new bundle,
 * and added to an existing one by `deno task train -- samples <bundle-dir>`, which rewrites the
 * manifest's file list (temp file + rename) and nothing else, so the version stays the same and
 * running it twice writes the same bytes.
 */
import { createHash } from "node:crypto";
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  encodeProbePixels,
  type FileEntry,
  MANIFEST_FILE,
  pickSampleRows,
  readManifest,
  SAMPLES_FILE,
  SAMPLES_FORMAT,
  type SampleSet,
  validateManifest,
  verifyBundleFiles,
} from "../bundle/mod.ts";
import { PIXELS } from "../common/labels.ts";
import type { LabelledImages } from "./bundle.ts";

/** Writes samples.json into `dir` from the evaluation split; returns its file entry. */
export async function writeSamples(
  dir: string,
  test: LabelledImages,
  classes: number,
  perClass: number,
): Promise<FileEntry> {
  const rows = pickSampleRows(test.labels.subarray(0, test.count), classes, perClass);
  const doc: SampleSet = {
    format: SAMPLES_FORMAT,
    samples: rows.map((r) => ({
      label: test.labels[r],
      pixels: encodeProbePixels(test.images.subarray(r * PIXELS, (r + 1) * PIXELS)),
    })),
    source: `the first ${perClass} images of each class in the evaluation split`,
  };
  const bytes = new TextEncoder().encode(JSON.stringify(doc));
  await writeFile(join(dir, SAMPLES_FILE), bytes);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return { role: "samples", path: SAMPLES_FILE, sha256, bytes: bytes.length };
}

/** Adds (or replaces) samples.json in an existing bundle and lists it in its manifest. */
export async function addSamples(
  dir: string,
  test: LabelledImages,
  perClass: number,
): Promise<FileEntry> {
  const manifest = await readManifest(dir);
  const entry = await writeSamples(dir, test, manifest.labels.length, perClass);
  const files = manifest.files.filter((f) => f.role !== "samples");
  const updated = validateManifest(
    JSON.parse(JSON.stringify({ ...manifest, files: [...files, entry] })),
  );
  const tmp = join(dir, `.${MANIFEST_FILE}.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(updated, null, 2) + "\n");
  await rename(tmp, join(dir, MANIFEST_FILE));
  await verifyBundleFiles(dir, await readManifest(dir));
  return entry;
}
