/**
 * Adds a file the publisher computes (a latent translation, the gate's evaluation) to a
 * bundle directory and lists it in the manifest with its sha256 and size, replacing an entry
 * of the same role. Runs on the registry's temporary copy, before it is verified.
 */
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { MANIFEST_FILE } from "../bundle/mod.ts";

export async function addBundleFile(
  dir: string,
  role: string,
  path: string,
  bytes: Uint8Array,
): Promise<void> {
  await writeFile(join(dir, path), bytes);
  const entry = {
    role,
    path,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    bytes: bytes.length,
  };
  const raw = JSON.parse(await readFile(join(dir, MANIFEST_FILE), "utf8"));
  raw.files = [...raw.files.filter((f: { role: string }) => f.role !== role), entry];
  await writeFile(join(dir, MANIFEST_FILE), JSON.stringify(raw, null, 2) + "\n");
}
