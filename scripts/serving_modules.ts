/**
 * Copies what the service needs at run time out of an installed node_modules (the Containerfile
 * runs this in its build stage): the dependency closure of the serving packages, resolved the
 * way Node resolves them from package-lock.json, minus files serving never loads (other
 * platforms' onnxruntime binaries, GPU execution providers, onnxruntime-web bundles other than
 * the one Deno imports, source maps, type declarations). The trainer's packages (tfjs, vega,
 * playwright, tsx) are not in the closure, so they never reach the image.
 *
 *   deno run --allow-read --allow-write scripts/serving_modules.ts --from node_modules --to /out/node_modules
 *
 * It also writes `<to>/../package.json` naming only the serving packages, which is what Deno
 * resolves bare specifiers with.
 */
import { cp, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";

/** The packages serve/, bundle/, registry/ and common/ import at run time. */
export const SERVING_ROOTS = [
  "hono",
  "onnxruntime-node",
  "onnxruntime-web",
  "fast-png",
  "jpeg-js",
  "@aws-sdk/client-s3",
];

interface LockEntry {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  dev?: boolean;
}

/** Where Node would find `dep` required from the package installed at `from` (a lock key). */
function resolveFrom(
  packages: Record<string, LockEntry>,
  from: string,
  dep: string,
): string | null {
  let base = from;
  for (;;) {
    const candidate = base ? `${base}/node_modules/${dep}` : `node_modules/${dep}`;
    if (packages[candidate]) return candidate;
    if (!base) return null;
    const i = base.lastIndexOf("/node_modules/");
    base = i < 0 ? "" : base.slice(0, i);
  }
}

/** Lock keys (e.g. "node_modules/onnxruntime-web/node_modules/long") of the roots' closure. */
export function dependencyClosure(
  lock: { packages: Record<string, LockEntry> },
  roots: string[] = SERVING_ROOTS,
): string[] {
  const packages = lock.packages;
  const seen = new Set<string>();
  const queue: string[] = [];
  for (const r of roots) {
    const key = resolveFrom(packages, "", r);
    if (!key) throw new Error(`package-lock.json has no ${r}: run npm ci first`);
    queue.push(key);
  }
  while (queue.length) {
    const key = queue.pop()!;
    if (seen.has(key)) continue;
    seen.add(key);
    const e = packages[key];
    for (const dep of Object.keys(e.dependencies ?? {})) {
      const k = resolveFrom(packages, key, dep);
      if (!k) throw new Error(`${key} needs ${dep}, which package-lock.json does not hold`);
      queue.push(k);
    }
    for (const dep of Object.keys(e.optionalDependencies ?? {})) {
      const k = resolveFrom(packages, key, dep);
      if (k) queue.push(k); // optional: absent on this platform is fine
    }
  }
  return [...seen].sort();
}

/** Paths (relative to node_modules) dropped from the copy: never loaded by the service. */
export function dropped(rel: string): boolean {
  if (/\.(map|d\.ts|d\.mts|d\.cts|md)$/.test(rel) && !/LICEN[CS]E/i.test(rel)) return true;
  // Linux x64 only; CUDA/TensorRT/DirectML providers would be separate libraries if present.
  const ortBin = /^onnxruntime-node\/bin\/napi-v\d+\/([^/]+)\/([^/]+)/.exec(rel);
  if (ortBin && (ortBin[1] !== "linux" || ortBin[2] !== "x64")) return true;
  if (/^onnxruntime-node\/.*(cuda|tensorrt|dml|directml)/i.test(rel)) return true;
  if (/^onnxruntime-node\/script\//.test(rel)) return true; // the install script
  // Deno imports onnxruntime-web through its "node" export, which loads the plain simd-threaded
  // wasm build; the browser bundles, JSEP/JSPI/asyncify builds and webgl/webgpu are unused.
  const web = /^onnxruntime-web\/(dist|lib)\/(.*)$/.exec(rel);
  if (web) {
    return web[1] === "lib" ||
      !/^(ort\.node\.min\.mjs|ort-wasm-simd-threaded\.(mjs|wasm))$/.test(web[2]);
  }
  if (/^@aws-sdk\/[^/]+\/dist-types\//.test(rel) || /^@smithy\/[^/]+\/dist-types\//.test(rel)) {
    return true;
  }
  return false;
}

async function copyPackage(from: string, to: string, root: string): Promise<number> {
  let bytes = 0;
  for (const e of await readdir(from, { withFileTypes: true })) {
    const src = join(from, e.name);
    const rel = relative(root, src);
    if (e.name === "node_modules") continue; // nested packages are copied as their own entries
    if (dropped(rel)) continue;
    if (e.isDirectory()) {
      bytes += await copyPackage(src, join(to, e.name), root);
    } else {
      await mkdir(dirname(join(to, e.name)), { recursive: true });
      await cp(src, join(to, e.name), { dereference: true });
      bytes += (await stat(src)).size;
    }
  }
  return bytes;
}

async function main(args: string[]): Promise<void> {
  const opt = (name: string) => {
    const i = args.indexOf(`--${name}`);
    if (i < 0 || !args[i + 1]) throw new Error(`--${name} <dir> is required`);
    return args[i + 1];
  };
  const from = opt("from");
  const to = opt("to");
  const lock = JSON.parse(await readFile(join(from, "..", "package-lock.json"), "utf8"));
  await rm(to, { recursive: true, force: true });
  let total = 0;
  const keys = dependencyClosure(lock);
  for (const key of keys) {
    const rel = key.slice("node_modules/".length);
    total += await copyPackage(join(from, rel), join(to, rel), from);
  }
  const pkg = JSON.parse(await readFile(join(from, "..", "package.json"), "utf8"));
  const all = { ...pkg.dependencies, ...pkg.devDependencies };
  const serving = {
    name: pkg.name,
    version: pkg.version,
    private: true,
    type: pkg.type,
    dependencies: Object.fromEntries(SERVING_ROOTS.map((r) => [r, all[r]])),
  };
  await writeFile(join(to, "..", "package.json"), JSON.stringify(serving, null, 2) + "\n");
  console.log(`${keys.length} packages, ${(total / 1e6).toFixed(1)} MB copied to ${to}`);
}

if (import.meta.main) await main(Deno.args);
