/**
 * A version stored in an S3 registry (layout in registry/registry_s3.ts), read back: its
 * manifest, the check of every object against it (what the publisher runs right before CURRENT
 * changes), one file, and a local copy of some of its files (what the regression gate scores
 * the active version from).
 */
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Manifest, MANIFEST_FILE, ManifestError, validateManifest } from "../bundle/mod.ts";
import { RegistryError } from "./registry.ts";
import { sameExportedFiles } from "./registry_write.ts";
import type { S3Registry } from "./registry_s3.ts";

/** The manifest stored for `name@version`, or null when the version is absent or incomplete. */
export async function remoteManifest(
  reg: S3Registry,
  name: string,
  version: string,
): Promise<Manifest | null> {
  const rel = `${name}/${version}/${MANIFEST_FILE}`;
  const text = await reg.getText(rel);
  if (text === null) return null;
  try {
    return validateManifest(JSON.parse(text));
  } catch (e) {
    const why = e instanceof ManifestError || e instanceof SyntaxError ? e.message : String(e);
    throw new RegistryError("no-version", `${reg.where(rel)} is not a valid manifest: ${why}`);
  }
}

/**
 * Re-reads every object of a version and checks it against its manifest (and, when given,
 * that the manifest lists the same files as `expected`). Throws naming the object at fault.
 */
export async function verifyRemoteVersion(
  reg: S3Registry,
  name: string,
  version: string,
  expected?: Manifest,
): Promise<Manifest> {
  const m = await remoteManifest(reg, name, version);
  if (m === null) {
    throw new RegistryError(
      "no-version",
      `${name}@${version} is not complete in ${reg.url}: ${
        reg.where(`${name}/${version}/${MANIFEST_FILE}`)
      } does not exist`,
    );
  }
  if (m.version !== version) {
    throw new RegistryError(
      "no-version",
      `${reg.where(`${name}/${version}/${MANIFEST_FILE}`)} declares version ${m.version}`,
    );
  }
  if (expected && !sameExportedFiles(m, expected)) {
    throw new RegistryError(
      "no-version",
      `Cannot publish ${name}@${version}: ${reg.url} already holds that version with different files (versions are immutable; export a new version)`,
    );
  }
  for (const f of m.files) await fetchChecked(reg, `${name}/${version}/`, f);
  return m;
}

/** The bytes of one file of a version, checked against its manifest entry. */
async function fetchChecked(
  reg: S3Registry,
  versionRel: string,
  f: Manifest["files"][number],
): Promise<Uint8Array> {
  const rel = versionRel + f.path;
  const o = await reg.get(rel);
  if (o === null) throw new RegistryError("no-version", `${reg.where(rel)} is missing`);
  const sha = createHash("sha256").update(o.bytes).digest("hex");
  if (o.bytes.length !== f.bytes || sha !== f.sha256) {
    throw new RegistryError(
      "no-version",
      `${
        reg.where(rel)
      }: ${o.bytes.length} bytes with sha256 ${sha}, the manifest expects ${f.bytes} bytes with ${f.sha256}`,
    );
  }
  return o.bytes;
}

/**
 * Copies a stored version's manifest `m` (remoteManifest) and its files of `roles` (all when
 * omitted) into the local directory `dest`, each file checked against the manifest.
 */
export async function downloadVersion(
  reg: S3Registry,
  name: string,
  m: Manifest,
  dest: string,
  roles?: readonly string[],
): Promise<void> {
  await mkdir(dest, { recursive: true });
  for (const f of m.files) {
    if (roles && !roles.includes(f.role)) continue;
    const path = join(dest, f.path);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, await fetchChecked(reg, `${name}/${m.version}/`, f));
  }
  await writeFile(join(dest, MANIFEST_FILE), JSON.stringify(m, null, 2) + "\n");
}

/** The checked bytes of the file of `role` in the stored version `m`, or null if it lists none. */
export async function remoteFile(
  reg: S3Registry,
  name: string,
  m: Manifest,
  role: string,
): Promise<Uint8Array | null> {
  const f = m.files.find((x) => x.role === role);
  return f ? await fetchChecked(reg, `${name}/${m.version}/`, f) : null;
}
