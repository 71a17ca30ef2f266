/**
 * A temporary registry in which the three committed tiny bundles were published one after the
 * other by the real publisher, so the second carries a latent translation from the first and
 * the third one from the second (fitted on 2000 Fashion-MNIST test images).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { publish } from "../trainer/publish.ts";
import { FIXTURES, MODEL, VERSIONS } from "./fixtures.ts";

export interface TranslationRegistry {
  root: string;
  /** Bundle directory of each published version, in publishing order. */
  dirs: string[];
  versions: string[];
  cleanup: () => Promise<void>;
}

export async function makeTranslationRegistry(count = 3): Promise<TranslationRegistry> {
  const root = await mkdtemp(join(tmpdir(), "translation-registry-"));
  for (const dir of FIXTURES.slice(0, count)) {
    await publish(dir, {
      registry: root,
      translationOptions: { images: 2000, log: () => {} },
    });
  }
  const versions = VERSIONS.slice(0, count);
  return {
    root,
    versions,
    dirs: versions.map((v) => join(root, MODEL, v)),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}
