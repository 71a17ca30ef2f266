/**
 * Translating stored latents into the active model's latent space by chaining the latent
 * translations that bundles carry (bundle/latent_translation.ts): the active bundle maps from
 * the version active before it, that one's bundle from its predecessor, and so on. Earlier
 * bundles are found beside the active one in the registry (<registry>/<name>/<version>/), their
 * manifests read and their map files checked against the manifest's sha256. A chain with a
 * missing link, or a link whose measured neighbour share is below the bound, is refused with an
 * error that names the link, so a client never receives a silently wrong latent.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  bundleFile,
  LATENT_TRANSLATION_ROLE,
  latentSpaceOf,
  type LatentTranslation,
  type Manifest,
  readLatentTranslation,
  readManifest,
  translate,
} from "../../bundle/mod.ts";

/** Why a translation was refused: no map (404) or a map whose fit is below the bound (422). */
export class TranslationError extends Error {
  constructor(readonly kind: "no_translation" | "translation_too_poor", message: string) {
    super(message);
    this.name = "TranslationError";
  }
}

export interface TranslationStep {
  from: string;
  to: string;
  method: string;
  r2: number;
  neighbours: number;
}

export interface TranslationPath {
  steps: LatentTranslation[];
  /** Size of the latents the path takes in. */
  fromSize: number;
}

/** Longest chain followed: more links than versions a registry keeps means a loop. */
const MAX_STEPS = 32;

/** Reads an earlier version's map, checking the file against its manifest's sha256. */
async function mapOf(dir: string, manifest: Manifest): Promise<LatentTranslation | null> {
  const entry = manifest.files.find((f) => f.role === LATENT_TRANSLATION_ROLE);
  if (!entry) return null;
  const bytes = await readFile(bundleFile(dir, manifest, LATENT_TRANSLATION_ROLE));
  const sha = createHash("sha256").update(bytes).digest("hex");
  if (sha !== entry.sha256) {
    throw new TranslationError(
      "no_translation",
      `The latent translation of ${manifest.version} (${entry.path}) does not match its sha256; it is not used`,
    );
  }
  return await readLatentTranslation(dir, manifest);
}

export class Translator {
  readonly #minNeighbours: number;
  /** Maps by bundle directory: bundles are immutable, so a map read once stays valid. */
  readonly #cache = new Map<string, { manifest: Manifest; map: LatentTranslation | null }>();

  /** @param minNeighbours links whose recorded 10-NN share is below this are refused */
  constructor(opts: { minNeighbours: number }) {
    this.#minNeighbours = opts.minNeighbours;
  }

  async #bundle(dir: string, manifest?: Manifest) {
    let hit = this.#cache.get(dir);
    if (!hit) {
      const m = manifest ?? (await readManifest(dir));
      hit = { manifest: m, map: await mapOf(dir, m) };
      if (this.#cache.size > 256) this.#cache.clear();
      this.#cache.set(dir, hit);
    }
    return hit;
  }

  /**
   * The maps leading from latent space `from` into the space of the bundle in `dir` (oldest
   * first); empty when `from` is that space already.
   */
  async path(dir: string, manifest: Manifest, from: string): Promise<TranslationPath> {
    const steps: LatentTranslation[] = [];
    let cur = { dir, manifest };
    while (latentSpaceOf(cur.manifest) !== from) {
      if (steps.length >= MAX_STEPS) {
        throw new TranslationError(
          "no_translation",
          `No latent translation from ${from}: the chain loops`,
        );
      }
      const { map } = await this.#bundle(cur.dir, cur.manifest);
      const here = `${cur.manifest.version} (space ${latentSpaceOf(cur.manifest)})`;
      if (!map) {
        throw new TranslationError(
          "no_translation",
          `No latent translation from space ${from} into the active space ${
            latentSpaceOf(manifest)
          }: ` +
            `version ${here} carries no map from an earlier version` +
            (steps.length
              ? ` (followed ${steps.length} map(s) back from ${manifest.version})`
              : ""),
        );
      }
      if (map.fit.neighbours < this.#minNeighbours) {
        throw new TranslationError(
          "translation_too_poor",
          `The latent translation ${map.from.version} -> ${map.to.version} keeps ${
            (100 * map.fit.neighbours).toFixed(1)
          }% of 10 nearest neighbours on held-out images, below the bound of ${
            (100 * this.#minNeighbours).toFixed(1)
          }% (--translate-min-neighbours); its latents cannot be translated`,
        );
      }
      steps.unshift(map);
      if (map.from.space === from) break;
      const prevDir = join(dirname(cur.dir), map.from.version);
      try {
        cur = { dir: prevDir, manifest: (await this.#bundle(prevDir)).manifest };
      } catch (e) {
        throw new TranslationError(
          "no_translation",
          `No latent translation from space ${from}: the chain needs version ${map.from.version}, ` +
            `which cannot be read (${(e as Error).message.split("\n")[0]})`,
        );
      }
    }
    return { steps, fromSize: steps[0]?.from.latentSize ?? manifest.latentSize };
  }
}

/** Runs n latents (n x path.fromSize) through every step of the path. */
export function applyPath(path: TranslationPath, x: Float32Array, n: number): Float32Array {
  let cur = x;
  for (const t of path.steps) cur = translate(t, cur, n);
  return cur;
}

/** The path's steps as the API reports them. */
export function describePath(path: TranslationPath): TranslationStep[] {
  return path.steps.map((t) => ({
    from: t.from.space,
    to: t.to.space,
    method: t.method,
    r2: t.fit.r2,
    neighbours: t.fit.neighbours,
  }));
}
