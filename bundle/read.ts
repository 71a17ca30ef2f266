/**
 * Reading a model bundle (a directory holding manifest.json and the files it lists) and
 * checking its files against the manifest's sizes and sha256: all of them, or only those of the
 * roles a reader needs (a server skips the trainer's checkpoint and the graph it does not run). Runs unchanged in Deno and Node:
 * only node:fs/promises, node:path and node:crypto.
 *
 * Every failure is a BundleError naming the bundle directory, the file or field, and the reason.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  type FileEntry,
  type Manifest,
  MANIFEST_FILE,
  ManifestError,
  validateManifest,
} from "./manifest.ts";

export class BundleError extends Error {
  /**
   * @param dir bundle directory (or another label for the bundle when no directory is known)
   * @param subject the file or field at fault, e.g. `model.onnx` or `manifest.json field "input.shape"`
   */
  constructor(readonly dir: string, readonly subject: string, reason: string) {
    super(`Bundle ${dir}: ${subject}: ${reason}`);
    this.name = "BundleError";
  }
}

/** Reads and validates `<dir>/manifest.json`. */
export async function readManifest(dir: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(join(dir, MANIFEST_FILE), "utf8");
  } catch (e) {
    throw new BundleError(dir, MANIFEST_FILE, `cannot be read (${(e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new BundleError(dir, MANIFEST_FILE, `is not valid JSON (${(e as Error).message})`);
  }
  try {
    return validateManifest(raw);
  } catch (e) {
    if (e instanceof ManifestError) {
      throw new BundleError(dir, `${MANIFEST_FILE} field "${e.field}"`, e.message);
    }
    throw e;
  }
}

/** Absolute path of the (first) file with `role`, e.g. "model" or "decoder". */
export function bundleFile(dir: string, manifest: Manifest, role: string): string {
  const f = manifest.files.find((x) => x.role === role);
  if (!f) {
    throw new BundleError(dir, `${MANIFEST_FILE} field "files"`, `has no file with role "${role}"`);
  }
  return join(dir, f.path);
}

/**
 * The listed files a reader needs: those whose role is in `roles` (a server's are
 * bundle/served.ts servedRoles), or every file when `roles` is not given (publish, training).
 */
export function filesFor(manifest: Manifest, roles?: readonly string[]): FileEntry[] {
  return roles ? manifest.files.filter((f) => roles.includes(f.role)) : manifest.files;
}

/** Checks that every listed file of `roles` (default: all) exists with its size and sha256. */
export async function verifyBundleFiles(
  dir: string,
  manifest: Manifest,
  roles?: readonly string[],
): Promise<void> {
  for (const f of filesFor(manifest, roles)) {
    const path = join(dir, f.path);
    let size: number;
    try {
      size = (await stat(path)).size;
    } catch (e) {
      throw new BundleError(
        dir,
        f.path,
        `is listed in the manifest (role "${f.role}") but cannot be read (${(e as Error).message})`,
      );
    }
    if (size !== f.bytes) {
      throw new BundleError(
        dir,
        f.path,
        `has ${size} bytes, the manifest expects ${f.bytes} (truncated or replaced file)`,
      );
    }
    const sha = createHash("sha256").update(await readFile(path)).digest("hex");
    if (sha !== f.sha256) {
      throw new BundleError(
        dir,
        f.path,
        `sha256 is ${sha}, the manifest expects ${f.sha256} (corrupt or replaced file)`,
      );
    }
  }
}

/** A bundle held in memory (downloaded, never written): its manifest and file bytes by path. */
export interface MemoryBundle {
  /** Where it came from (a URL), for error messages in place of a directory. */
  label: string;
  manifest: Manifest;
  files: Map<string, Uint8Array>;
}

/** verifyBundleFiles for a MemoryBundle: each listed file of `roles` (default: all) present and intact. */
export function verifyBundleBytes(bundle: MemoryBundle, roles?: readonly string[]): void {
  for (const f of filesFor(bundle.manifest, roles)) {
    const bytes = bundle.files.get(f.path);
    if (!bytes) {
      throw new BundleError(
        bundle.label,
        f.path,
        `is listed in the manifest (role "${f.role}") but was not downloaded`,
      );
    }
    if (bytes.length !== f.bytes) {
      throw new BundleError(
        bundle.label,
        f.path,
        `has ${bytes.length} bytes, the manifest expects ${f.bytes} (truncated or replaced file)`,
      );
    }
    const sha = createHash("sha256").update(bytes).digest("hex");
    if (sha !== f.sha256) {
      throw new BundleError(
        bundle.label,
        f.path,
        `sha256 is ${sha}, the manifest expects ${f.sha256} (corrupt or replaced file)`,
      );
    }
  }
}
