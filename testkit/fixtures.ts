/**
 * The committed test fixtures (tests/testdata/) by name, so no test or script spells their
 * paths: the three tiny bundles (same recipe, different seeds, so they disagree on some
 * images), the tiny bundle's reference outputs, their versions and probe images, and a
 * temporary registry holding all three. node: APIs only, so Node tests can use it too.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeProbePixels, type Manifest } from "../bundle/mod.ts";
import { activateVersion } from "../registry/registry_write.ts";

const testdata = (name: string) => new URL(`../tests/testdata/${name}`, import.meta.url).pathname;

/** The small bundle the service tests and the scripts' defaults run on. */
export const TINY_BUNDLE = testdata("tiny-bundle");
/** Reference inputs and outputs of TINY_BUNDLE (computed at export with onnxruntime-node). */
export const TINY_EXPECTED = testdata("tiny-bundle-expected.json");
/** The other two tiny bundles (same recipe, other seeds). */
export const TINY_BUNDLE_B = testdata("tiny-bundle-b");
export const TINY_BUNDLE_C = testdata("tiny-bundle-c");
/** The three tiny bundles, TINY_BUNDLE first. */
export const FIXTURES = [TINY_BUNDLE, TINY_BUNDLE_B, TINY_BUNDLE_C];
/** The model name of every fixture. */
export const MODEL = "fashion-vae";

/** A bundle's manifest as written, unchecked (bundle/ verifies; fixtures are known good). */
export function manifestOf(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
}
export const VERSIONS = FIXTURES.map((d) => manifestOf(d).version);

/** The probe images of all fixtures (24 images of 784 bytes): the inputs the load tests send. */
export function probeImages(): Uint8Array[] {
  return FIXTURES.flatMap((d) => manifestOf(d).probe.cases.map((c) => decodeProbePixels(c.pixels)));
}

/** A temporary registry holding every fixture, CURRENT on the first. Copies (no onnxruntime check). */
export async function makeRegistry(): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), "swap-registry-"));
  for (const [i, dir] of FIXTURES.entries()) {
    await cp(dir, join(root, MODEL, VERSIONS[i]), { recursive: true });
  }
  await activateVersion(root, MODEL, VERSIONS[0], "publish");
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/**
 * Adds a 256 KiB checkpoint.bin (role "checkpoint", as the trainer writes one) to the bundle
 * copy in `dir`, listed with its sha256: a file no server should download.
 */
export async function addCheckpoint(dir: string): Promise<void> {
  const weights = Uint8Array.from({ length: 256 * 1024 }, (_, i) => (i * 31 + 7) % 256);
  await writeFile(join(dir, "checkpoint.bin"), weights);
  const m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
  m.files.push({
    role: "checkpoint",
    path: "checkpoint.bin",
    sha256: createHash("sha256").update(weights).digest("hex"),
    bytes: weights.length,
  });
  await writeFile(join(dir, "manifest.json"), JSON.stringify(m, null, 2));
}
