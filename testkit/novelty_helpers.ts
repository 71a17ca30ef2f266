/**
 * A calibrated copy of the committed tiny bundle for the novelty tests: the tiny bundle's files
 * in a temporary directory, calibrated (trainer/novelty.ts) on a stratified subset of real
 * training images so it takes seconds. Made once per test process.
 */
import { copyFile, mkdtemp, readdir } from "node:fs/promises";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { loadFashionMnist, stratifiedSubset } from "../trainer/data.ts";
import { calibrateBundle } from "../trainer/novelty.ts";
import { resolveDataDir } from "../common/fashion_mnist.ts";
import { TINY_BUNDLE } from "./fixtures.ts";

/** Copies a bundle directory (flat: manifest and files) into a new temporary directory. */
export async function copyBundle(src: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "novelty-bundle-"));
  for (const f of await readdir(src)) await copyFile(join(src, f), join(dir, f));
  return dir;
}

let calibrated: Promise<string> | null = null;

/** The tiny bundle calibrated on 3,000 training images (1,000 of them held out). */
export function calibratedTinyBundle(): Promise<string> {
  calibrated ??= (async () => {
    const dir = await copyBundle(TINY_BUNDLE);
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const train = stratifiedSubset(loadFashionMnist(resolveDataDir()).train, 3000, 5);
    await calibrateBundle(dir, train, { heldOutCount: 1000 });
    return dir;
  })();
  return calibrated;
}
