/**
 * The model registry on disk: `<registry>/<name>/<version>/` holds one bundle and
 * `<registry>/<name>/CURRENT` holds the active version id (a publisher replaces it atomically
 * by rename, so a reader sees the old or the new id, never half a file). This module only
 * reads that layout: which version is active and which versions exist. It does not validate
 * bundles (bundle/ does). Pure node:fs/promises + node:path, for Deno and Node.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { VERSION_ID } from "../bundle/mod.ts";

export const CURRENT_FILE = "CURRENT";

export interface ActiveModel {
  name: string;
  version: string;
  /** Absolute path of the bundle directory. */
  dir: string;
}

export interface VersionInfo {
  version: string;
  dir: string;
  /** True when CURRENT names this version. */
  active: boolean;
  /** True when the directory holds a manifest.json (it may still fail validation). */
  hasManifest: boolean;
}

export type RegistryErrorCode =
  | "no-registry"
  | "no-model"
  | "ambiguous-model"
  | "no-current"
  | "bad-current"
  | "no-version";

export class RegistryError extends Error {
  constructor(readonly code: RegistryErrorCode, message: string) {
    super(message);
    this.name = "RegistryError";
  }
}

/** Version ids and model names are directory names: the bundle contract's id rule. */
const SAFE_ID = VERSION_ID;

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Whether a path exists (any kind of entry); shared with registry_write.ts. */
export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function subdirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory() && SAFE_ID.test(e.name)).map((e) => e.name).sort();
}

/** Model names in the registry: sub-directories holding a CURRENT file or any version dir. */
export async function listModels(registryDir: string): Promise<string[]> {
  const root = resolve(registryDir);
  if (!(await isDir(root))) {
    throw new RegistryError(
      "no-registry",
      `Cannot read model registry ${root}: directory does not exist`,
    );
  }
  const names: string[] = [];
  for (const name of await subdirs(root)) {
    if (
      (await exists(join(root, name, CURRENT_FILE))) || (await subdirs(join(root, name))).length > 0
    ) names.push(name);
  }
  return names;
}

async function pickName(root: string, name: string | undefined): Promise<string> {
  if (name !== undefined) {
    if (!SAFE_ID.test(name)) {
      throw new RegistryError("no-model", `Model name "${name}" is not a plain directory name`);
    }
    if (!(await isDir(join(root, name)))) {
      const known = await listModels(root);
      throw new RegistryError(
        "no-model",
        `Cannot find model "${name}" in registry ${root}: no such directory (models: ${
          known.join(", ") || "none"
        })`,
      );
    }
    return name;
  }
  const names = await listModels(root);
  if (names.length === 0) {
    throw new RegistryError("no-model", `Model registry ${root} holds no models`);
  }
  if (names.length > 1) {
    throw new RegistryError(
      "ambiguous-model",
      `Model registry ${root} holds ${names.length} models (${names.join(", ")}); name one`,
    );
  }
  return names[0];
}

/**
 * The model a command is about: `name` when given (it must exist), else the registry's only
 * model. Reads directories only, never CURRENT, so repair commands work when CURRENT is damaged.
 */
export function resolveModelName(registryDir: string, name?: string): Promise<string> {
  return pickName(resolve(registryDir), name);
}

async function readCurrent(root: string, name: string): Promise<string> {
  const path = join(root, name, CURRENT_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    throw new RegistryError(
      "no-current",
      `Cannot find the active version of model "${name}": ${path} does not exist`,
    );
  }
  const version = text.trim();
  if (!SAFE_ID.test(version)) {
    throw new RegistryError(
      "bad-current",
      `${path} must hold one version id ([A-Za-z0-9._-]), got ${JSON.stringify(text.slice(0, 80))}`,
    );
  }
  return version;
}

/**
 * The active bundle of a model: CURRENT's version and its directory. With name omitted the
 * registry must hold exactly one model. Throws RegistryError naming what is missing.
 */
export async function resolveActive(registryDir: string, name?: string): Promise<ActiveModel> {
  const root = resolve(registryDir);
  if (!(await isDir(root))) {
    throw new RegistryError(
      "no-registry",
      `Cannot read model registry ${root}: directory does not exist`,
    );
  }
  const model = await pickName(root, name);
  const version = await readCurrent(root, model);
  const dir = join(root, model, version);
  if (!(await isDir(dir))) {
    throw new RegistryError(
      "no-version",
      `Model "${model}": ${
        join(root, model, CURRENT_FILE)
      } names version "${version}" but ${dir} does not exist`,
    );
  }
  return { name: model, version, dir };
}

/** All version directories of a model, sorted by id, flagged active / has-manifest. */
export async function listVersions(registryDir: string, name: string): Promise<VersionInfo[]> {
  const root = resolve(registryDir);
  if (!(await isDir(root))) {
    throw new RegistryError(
      "no-registry",
      `Cannot read model registry ${root}: directory does not exist`,
    );
  }
  await pickName(root, name);
  let current: string | null = null;
  try {
    current = await readCurrent(root, name);
  } catch {
    current = null; // listing still makes sense without an active version
  }
  const out: VersionInfo[] = [];
  for (const version of await subdirs(join(root, name))) {
    const dir = join(root, name, version);
    out.push({
      version,
      dir,
      active: version === current,
      hasManifest: await exists(join(dir, "manifest.json")),
    });
  }
  return out;
}
