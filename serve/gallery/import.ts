/**
 * `deno task gallery -- import <folder>`: adds every PNG/JPEG under a folder to the gallery
 * database, embedded with the registry's active model (or --bundle), through the same
 * preprocessing as /v1/classify. Item ids are the files' paths relative to the folder without
 * the extension; a `<name>.json` beside an image becomes its metadata (default {"file": path}).
 * A file that cannot be decoded is reported and skipped; the others are imported (exit 1 then).
 * Run it while the server is stopped, or restart the server after: a running server keeps its
 * own in-memory index and does not see rows added by another process.
 */
import { readdir, readFile } from "node:fs/promises";
import { extname, join, relative } from "node:path";
import { FlagError, type FlagSpecs, formatHelp, parseFlags } from "../../common/flags.ts";
import { decodeImage } from "../../common/image_codec.ts";
import { preprocess, toBytes } from "../../common/preprocess.ts";
import { resolveActive } from "../../registry/registry.ts";
import { loadBackend, loadModel, ModelSlot } from "../inference/mod.ts";
import { Translator } from "../latents/translate.ts";
import { Gallery, type NewItem } from "./gallery.ts";

export const IMPORT_FLAGS = {
  db: { type: "string", default: "gallery.sqlite", env: "GALLERY_DB", help: "gallery SQLite file" },
  registry: { type: "string", default: "models", env: "MODEL_REGISTRY", help: "model registry" },
  model: { type: "string", help: "model name in the registry (default: the only one)" },
  bundle: { type: "string", help: "embed with this bundle directory instead of the registry's" },
  backend: {
    type: "string",
    default: "auto",
    choices: ["auto", "native", "wasm"],
    help: "onnxruntime backend",
  },
  batch: { type: "int", default: 512, help: "images decoded and embedded per transaction" },
} satisfies FlagSpecs;

export const IMPORT_USAGE =
  "Usage: deno task gallery -- import <folder> [--db gallery.sqlite] [--registry models]";

const IMAGE_EXT = new Set([".png", ".jpg", ".jpeg"]);

async function listImages(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && IMAGE_EXT.has(extname(e.name).toLowerCase())) {
      out.push(join((e as unknown as { parentPath?: string }).parentPath ?? dir, e.name));
    }
  }
  return out.sort();
}

async function readItem(dir: string, file: string): Promise<NewItem> {
  const rel = relative(dir, file);
  const id = rel.slice(0, rel.length - extname(rel).length);
  const img = decodeImage(new Uint8Array(await readFile(file)));
  const pixels = toBytes(preprocess(img, "auto"));
  let metadata: unknown = { file: rel };
  const side = file.slice(0, file.length - extname(file).length) + ".json";
  try {
    metadata = JSON.parse(await readFile(side, "utf8"));
  } catch (e) {
    if ((e as { code?: string }).code !== "ENOENT") {
      throw new Error(`${side}: ${(e as Error).message}`);
    }
  }
  return { id, pixels, metadata };
}

export interface ImportResult {
  imported: number;
  failed: { file: string; error: string }[];
  seconds: number;
}

/** Imports the images under `dir` into the gallery `g`. */
export async function importFolder(
  g: Gallery,
  dir: string,
  opts: { batch?: number; log?: (s: string) => void } = {},
): Promise<ImportResult> {
  const t0 = performance.now();
  const files = await listImages(dir);
  const failed: ImportResult["failed"] = [];
  let imported = 0;
  const batch = opts.batch ?? 512;
  for (let i = 0; i < files.length; i += batch) {
    const items: NewItem[] = [];
    for (const f of files.slice(i, i + batch)) {
      try {
        items.push(await readItem(dir, f));
      } catch (e) {
        failed.push({ file: relative(dir, f), error: (e as Error).message });
      }
    }
    await g.add(items);
    imported += items.length;
    if (i % (batch * 20) === 0) opts.log?.(`  ${imported}/${files.length} imported`);
  }
  return { imported, failed, seconds: (performance.now() - t0) / 1000 };
}

/** The CLI; returns the exit status. */
export async function importMain(
  argv: string[],
  log = (s: string) => console.error(s),
): Promise<number> {
  const { flags: f, positional } = parseFlags(
    argv[0] === "--" ? argv.slice(1) : argv,
    IMPORT_FLAGS,
    Deno.env.toObject(),
  );
  if (f.help) {
    console.log(formatHelp(IMPORT_USAGE, IMPORT_FLAGS));
    return 0;
  }
  if (positional[0] !== "import" || positional.length !== 2) {
    throw new FlagError(`Expected: import <folder>\n${IMPORT_USAGE}`);
  }
  const dir = positional[1];
  const bundle = (f.bundle as string | undefined) ??
    (await resolveActive(f.registry as string, f.model as string | undefined)).dir;
  const { backend } = await loadBackend(f.backend as "auto", { threads: 0 });
  const slot = new ModelSlot(await loadModel(bundle, { backend, maxBatch: 256 }));
  const g = Gallery.open(f.db as string, {
    slot,
    translator: new Translator({ minNeighbours: 0.5 }),
    log,
  });
  try {
    await slot.use((m) => g.align(m));
    const r = await importFolder(g, dir, { batch: f.batch as number, log });
    for (const x of r.failed) log(`skipped ${x.file}: ${x.error}`);
    log(
      `imported ${r.imported} image(s) into ${f.db} in ${r.seconds.toFixed(1)} s ` +
        `(${
          Math.round(r.imported / r.seconds)
        } images/s), ${r.failed.length} skipped; gallery holds ${g.index.size}`,
    );
    return r.failed.length ? 1 : 0;
  } finally {
    await g.close();
    await slot.close();
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await importMain(Deno.args));
  } catch (e) {
    console.error(
      e instanceof FlagError ? `error: ${e.message}` : `gallery: ${(e as Error).message}`,
    );
    Deno.exit(2);
  }
}
