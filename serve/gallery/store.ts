/**
 * The gallery's database: one SQLite file (node:sqlite, embedded, no server) holding every
 * item's id, its 28x28 image as the model sees it (784 bytes, Fashion-MNIST layout), optional
 * JSON metadata, and its latent mu with the latent space it was computed in (or translated
 * into). The images make re-embedding possible after a hot swap; the latents make a restart
 * instant. WAL journaling, so a reader never blocks the writer. Opening checks that the file
 * is an SQLite database (quick_check) holding this format, and refuses anything else with a
 * GalleryError naming the file and the reason, without touching the file.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { PIXELS } from "../../common/labels.ts";

export const GALLERY_FORMAT = "latent-edge/gallery@1";

export class GalleryError extends Error {
  constructor(readonly path: string, reason: string) {
    super(`Gallery ${path}: ${reason}`);
    this.name = "GalleryError";
  }
}

export interface StoredItem {
  id: string;
  pixels: Uint8Array;
  metadata: unknown;
  /** mu, or null when the item was never embedded. */
  latent: Float32Array | null;
  space: string | null;
  translated: boolean;
  added: string;
}

export interface ItemRow {
  id: string;
  latent: Float32Array | null;
  space: string | null;
  translated: boolean;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
  id TEXT PRIMARY KEY,
  pixels BLOB NOT NULL,
  metadata TEXT,
  latent BLOB,
  space TEXT,
  translated INTEGER NOT NULL DEFAULT 0,
  added TEXT NOT NULL
);`;

function floats(b: Uint8Array | null): Float32Array | null {
  if (!b) return null;
  // Copy: the blob's buffer may not be 4-byte aligned.
  return new Float32Array(Uint8Array.from(b).buffer);
}

function blob(v: Float32Array | null): Uint8Array | null {
  return v ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : null;
}

export class GalleryStore {
  readonly path: string;
  #db: DatabaseSync;
  #put: StatementSync;
  #setLatent: StatementSync;
  /** Metadata lookups by number of ids (a search asks for k at a time; few distinct k). */
  #metaBy = new Map<number, StatementSync>();

  private constructor(path: string, db: DatabaseSync) {
    this.path = path;
    this.#db = db;
    this.#put = db.prepare(
      `INSERT INTO items (id, pixels, metadata, latent, space, translated, added)
       VALUES (?, ?, ?, ?, ?, 0, ?)
       ON CONFLICT(id) DO UPDATE SET pixels = excluded.pixels, metadata = excluded.metadata,
         latent = excluded.latent, space = excluded.space, translated = 0, added = excluded.added`,
    );
    this.#setLatent = db.prepare(
      "UPDATE items SET latent = ?, space = ?, translated = ? WHERE id = ?",
    );
  }

  /** Opens (creating when missing) the gallery at `path`; throws GalleryError when unusable. */
  static open(path: string): GalleryStore {
    let db: DatabaseSync | null = null;
    try {
      db = new DatabaseSync(path);
      const check = db.prepare("PRAGMA quick_check").all() as { quick_check: string }[];
      if (check.length !== 1 || check[0].quick_check !== "ok") {
        throw new Error(`integrity check failed: ${check.map((r) => r.quick_check).join("; ")}`);
      }
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
        name: string;
      }[]).map((t) => t.name);
      if (tables.length && !tables.includes("meta")) {
        throw new Error(
          `it is an SQLite database of something else (tables: ${tables.join(", ")})`,
        );
      }
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec(SCHEMA);
      const format = db.prepare("SELECT value FROM meta WHERE key = 'format'").get() as
        | { value: string }
        | undefined;
      if (!format) db.prepare("INSERT INTO meta VALUES ('format', ?)").run(GALLERY_FORMAT);
      else if (format.value !== GALLERY_FORMAT) {
        throw new Error(`format is ${JSON.stringify(format.value)}, expected ${GALLERY_FORMAT}`);
      }
      return new GalleryStore(path, db);
    } catch (e) {
      try {
        db?.close();
      } catch { /* already unusable */ }
      throw new GalleryError(path, `cannot be used as a gallery: ${(e as Error).message}`);
    }
  }

  close(): void {
    this.#db.close();
  }

  /** Runs fn in one transaction (many writes, one fsync). */
  transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN");
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
  }

  /** Adds or replaces an item. */
  put(
    item: {
      id: string;
      pixels: Uint8Array;
      metadata?: unknown;
      latent: Float32Array | null;
      space: string | null;
    },
  ): void {
    if (item.pixels.length !== PIXELS) {
      throw new Error(`item ${item.id}: ${item.pixels.length} pixels, expected ${PIXELS}`);
    }
    this.#put.run(
      item.id,
      item.pixels,
      item.metadata === undefined ? null : JSON.stringify(item.metadata),
      blob(item.latent),
      item.space,
      new Date().toISOString(),
    );
  }

  setLatent(
    id: string,
    latent: Float32Array | null,
    space: string | null,
    translated: boolean,
  ): void {
    this.#setLatent.run(blob(latent), space, translated ? 1 : 0, id);
  }

  remove(id: string): boolean {
    return Number(this.#db.prepare("DELETE FROM items WHERE id = ?").run(id).changes) > 0;
  }

  count(): number {
    return Number((this.#db.prepare("SELECT COUNT(*) AS n FROM items").get() as { n: number }).n);
  }

  /** Every item's id and latent (no images), for building the in-memory index. */
  rows(): ItemRow[] {
    const out: ItemRow[] = [];
    const st = this.#db.prepare("SELECT id, latent, space, translated FROM items ORDER BY rowid");
    for (const r of st.iterate() as Iterable<Record<string, unknown>>) {
      out.push({
        id: r.id as string,
        latent: floats(r.latent as Uint8Array | null),
        space: r.space as string | null,
        translated: r.translated === 1,
      });
    }
    return out;
  }

  get(id: string): StoredItem | null {
    const r = this.#db.prepare("SELECT * FROM items WHERE id = ?").get(id) as
      | Record<string, unknown>
      | undefined;
    if (!r) return null;
    return {
      id: r.id as string,
      pixels: Uint8Array.from(r.pixels as Uint8Array),
      metadata: r.metadata === null ? null : JSON.parse(r.metadata as string),
      latent: floats(r.latent as Uint8Array | null),
      space: r.space as string | null,
      translated: r.translated === 1,
      added: r.added as string,
    };
  }

  /** Metadata of several items at once (search results). */
  metadataOf(ids: string[]): Map<string, unknown> {
    const out = new Map<string, unknown>();
    if (!ids.length) return out;
    let st = this.#metaBy.get(ids.length);
    if (!st) {
      st = this.#db.prepare(
        `SELECT id, metadata FROM items WHERE id IN (${ids.map(() => "?").join(",")})`,
      );
      if (this.#metaBy.size < 128) this.#metaBy.set(ids.length, st);
    }
    for (const r of st.all(...ids) as { id: string; metadata: string | null }[]) {
      out.set(r.id, r.metadata === null ? null : JSON.parse(r.metadata));
    }
    return out;
  }

  /** Images of several items, in the order given (re-embedding). */
  pixelsOf(ids: string[]): Uint8Array {
    const out = new Uint8Array(ids.length * PIXELS);
    const st = this.#db.prepare("SELECT pixels FROM items WHERE id = ?");
    ids.forEach((id, i) => {
      const r = st.get(id) as { pixels: Uint8Array } | undefined;
      if (r) out.set(r.pixels, i * PIXELS);
    });
    return out;
  }
}
