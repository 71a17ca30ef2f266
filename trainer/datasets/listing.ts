/**
 * Finds the images of a dataset and their class names, before any pixel is read. The kind of
 * source is detected from the path:
 *   a directory holding the four Fashion-MNIST IDX files    -> "idx" (trainer/data.ts reads it)
 *   a directory of class folders <root>/<class>/**\/*.png|jpg|jpeg, optionally split as
 *   <root>/train/<class>/... and <root>/test/<class>/...    -> "folder"
 *   a .csv file (header with "path" and "label", optional "split") -> "csv"
 *   a .jsonl file ({"path", "label", "split"?} per line)    -> "jsonl"
 * Paths in listing files are relative to the listing file. Every problem names the file (and
 * line) and the reason.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, extname, join, resolve, sep } from "node:path";
import { labelNamesProblem } from "../../bundle/labels.ts";
import { FILES as IDX_FILES } from "../data.ts";
import { DatasetError, listProblems } from "./errors.ts";

export type SourceKind = "idx" | "folder" | "csv" | "jsonl";
export type SplitName = "train" | "test";

export interface ListedImage {
  /** Absolute path of the image file. */
  path: string;
  /** Index into Listing.classNames. */
  label: number;
  /** The split the source assigns, or null when the trainer chooses. */
  split: SplitName | null;
  /** Where the image was named, for messages: the file itself, or "list.csv:12". */
  where: string;
}

export interface Listing {
  kind: SourceKind;
  /** The path as given, resolved. */
  source: string;
  classNames: string[];
  images: ListedImage[];
  /** Files seen but not taken (other extensions, files outside class folders). */
  ignored: number;
}

export const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg"];
const NATURAL = new Intl.Collator("en", { numeric: true });

/** Class names in a stable order: natural (so "2" < "10"), then by code point to break ties. */
export function sortClassNames(names: Iterable<string>): string[] {
  return [...new Set(names)].sort((a, b) => NATURAL.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0));
}

export function detectKind(path: string): SourceKind {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new DatasetError(`Cannot read dataset ${path}: no such file or directory`);
  }
  if (st.isDirectory()) {
    return Object.values(IDX_FILES).every((f) => existsSync(join(path, f))) ? "idx" : "folder";
  }
  const ext = extname(path).toLowerCase();
  if (ext === ".csv") return "csv";
  if (ext === ".jsonl" || ext === ".ndjson") return "jsonl";
  throw new DatasetError(
    `Cannot read dataset ${path}: a file must be a .csv or .jsonl listing (got "${ext}")`,
  );
}

function isImageName(name: string): boolean {
  const dot = name.lastIndexOf(".");
  return dot > 0 && IMAGE_EXTENSIONS.includes(name.slice(dot).toLowerCase());
}

const byName = (a: { name: string }, b: { name: string }) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/** Image files under `dir`, recursively, sorted by name; hidden entries skipped. */
function walk(dir: string, out: string[], counts: { ignored: number }): void {
  // Plain concatenation, not path.join: listing 60,000 files is on the cached run's clock.
  for (const e of readdirSync(dir, { withFileTypes: true }).sort(byName)) {
    if (e.name.startsWith(".")) continue;
    if (e.isDirectory()) walk(dir + sep + e.name, out, counts);
    else if (isImageName(e.name)) out.push(dir + sep + e.name);
    else counts.ignored++;
  }
}

function subdirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith("."))
    .map((e) => e.name);
}

function checkNames(names: string[], where: string): void {
  const problem = labelNamesProblem(names);
  if (problem) throw new DatasetError(`Cannot use the classes of ${where}: ${problem}`);
}

function listFolder(root: string): Listing {
  const top = subdirs(root);
  const counts = { ignored: 0 };
  for (const e of readdirSync(root, { withFileTypes: true })) if (e.isFile()) counts.ignored++;
  const splitLayout = top.includes("train") && top.includes("test") && top.length === 2;
  const parts: [string, SplitName | null][] = splitLayout
    ? [[join(root, "train"), "train"], [join(root, "test"), "test"]]
    : [[root, null]];
  const perClass: { dir: string; name: string; split: SplitName | null; files: string[] }[] = [];
  for (const [dir, split] of parts) {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isFile()) counts.ignored++;
    for (const name of subdirs(dir)) {
      const files: string[] = [];
      walk(join(dir, name), files, counts);
      perClass.push({ dir: join(dir, name), name, split, files });
    }
  }
  if (perClass.length === 0) {
    throw new DatasetError(
      `Cannot read dataset ${root}: no class folders (expected ${root}/<class name>/*.png|jpg|jpeg)`,
    );
  }
  const empty = perClass.filter((c) => c.files.length === 0);
  if (empty.length) {
    throw new DatasetError(
      `Cannot read dataset ${root}: class folder(s) without any .png/.jpg/.jpeg image:\n` +
        listProblems(empty.map((c) => c.dir)),
    );
  }
  const classNames = sortClassNames(perClass.filter((c) => c.split !== "test").map((c) => c.name));
  checkNames(classNames, root);
  const index = new Map(classNames.map((n, i) => [n, i]));
  const unknown = perClass.filter((c) => !index.has(c.name));
  if (unknown.length) {
    throw new DatasetError(
      `Cannot read dataset ${root}: test class folder(s) with no train folder of the same name:\n` +
        listProblems(unknown.map((c) => c.dir)),
    );
  }
  const images: ListedImage[] = [];
  for (const c of perClass) {
    for (const path of c.files) {
      images.push({ path, label: index.get(c.name)!, split: c.split, where: path });
    }
  }
  return { kind: "folder", source: root, classNames, images, ignored: counts.ignored };
}

/** One CSV line split into fields (RFC 4180 quoting: "a, b" and "" inside quotes). */
export function parseCsvLine(line: string): string[] {
  const out: string[] = [];
  let field = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') field += '"', i++;
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === "") quoted = true;
    else if (ch === ",") out.push(field), field = "";
    else field += ch;
  }
  if (quoted) throw new Error("a quoted field is not closed");
  out.push(field);
  return out;
}

interface Row {
  path: unknown;
  label: unknown;
  split: unknown;
  line: number;
}

function csvRows(file: string, text: string): Row[] {
  const lines = text.split(/\r?\n/);
  const header = parseCsvLine(lines[0] ?? "").map((h) => h.trim().toLowerCase());
  const col = (name: string) => header.indexOf(name);
  for (const need of ["path", "label"]) {
    if (col(need) < 0) {
      throw new DatasetError(
        `Cannot read ${file}: line 1: the header has no "${need}" column (columns: ${
          header.map((h) => JSON.stringify(h)).join(", ")
        })`,
      );
    }
  }
  const rows: Row[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].trim() === "") continue;
    let f: string[];
    try {
      f = parseCsvLine(lines[i]);
    } catch (e) {
      throw new DatasetError(`Cannot read ${file}: line ${i + 1}: ${(e as Error).message}`);
    }
    if (f.length !== header.length) {
      throw new DatasetError(
        `Cannot read ${file}: line ${i + 1}: ${f.length} fields, the header has ${header.length}`,
      );
    }
    const split = col("split") >= 0 ? f[col("split")] : "";
    rows.push({ path: f[col("path")], label: f[col("label")], split, line: i + 1 });
  }
  return rows;
}

function jsonlRows(file: string, text: string): Row[] {
  const rows: Row[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") return;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(
        `Cannot read ${file}: line ${i + 1}: not JSON (${(e as Error).message})`,
      );
    }
    if (typeof o !== "object" || o === null || Array.isArray(o)) {
      throw new DatasetError(`Cannot read ${file}: line ${i + 1}: not a JSON object`);
    }
    const r = o as Record<string, unknown>;
    rows.push({ path: r.path, label: r.label, split: r.split ?? "", line: i + 1 });
  });
  return rows;
}

function listFile(file: string, kind: "csv" | "jsonl"): Listing {
  const text = readFileSync(file, "utf8");
  const rows = kind === "csv" ? csvRows(file, text) : jsonlRows(file, text);
  if (rows.length === 0) throw new DatasetError(`Cannot read ${file}: it lists no images`);
  const base = dirname(file);
  const problems: string[] = [];
  const named: { path: string; label: string; split: SplitName | null; where: string }[] = [];
  for (const r of rows) {
    const where = `${basename(file)}:${r.line}`;
    if (typeof r.path !== "string" || r.path.trim() === "") {
      problems.push(`${file}: line ${r.line}: "path" is missing or empty`);
      continue;
    }
    const label = typeof r.label === "number" ? String(r.label) : r.label;
    if (typeof label !== "string" || label.trim() === "") {
      problems.push(`${file}: line ${r.line}: "label" is missing or empty`);
      continue;
    }
    const split = String(r.split ?? "").trim().toLowerCase();
    if (split !== "" && split !== "train" && split !== "test") {
      problems.push(
        `${file}: line ${r.line}: "split" must be train, test or empty, got "${split}"`,
      );
      continue;
    }
    const path = resolve(base, r.path);
    if (!existsSync(path)) {
      problems.push(`${file}: line ${r.line}: ${r.path} does not exist (looked for ${path})`);
      continue;
    }
    named.push({ path, label, split: (split || null) as SplitName | null, where });
  }
  if (problems.length) {
    throw new DatasetError(
      `Cannot read ${file}: ${problems.length} bad row(s):\n${listProblems(problems)}`,
    );
  }
  const classNames = sortClassNames(named.map((n) => n.label));
  checkNames(classNames, file);
  const index = new Map(classNames.map((n, i) => [n, i]));
  const images = named.map((n) => ({ ...n, label: index.get(n.label)! }));
  return { kind, source: file, classNames, images, ignored: 0 };
}

/** Lists an image-folder, CSV or JSONL dataset (not "idx": trainer/data.ts reads those). */
export function listImages(path: string): Listing {
  const source = resolve(path);
  const kind = detectKind(source);
  if (kind === "idx") throw new Error(`listImages: ${source} is an IDX dataset`);
  return kind === "folder" ? listFolder(source) : listFile(source, kind);
}
