/**
 * The similarity gallery: items (id, 28x28 image, metadata) whose latents are kept in SQLite
 * (store.ts) and searched in memory (vectors.ts), always in the latent space of the model
 * serving now. When the active model changes (a hot swap), the gallery re-aligns: latents from
 * a space the new bundle can translate from are translated at once (marked "translated"),
 * the others are held back (pending), and a background task re-embeds every item from its
 * stored image with the new model, a small batch at a time with a pause between batches so
 * requests keep their latency. Searches during that time say how many items are translated or
 * pending, so an answer is never silently inconsistent with the active model.
 */
import { PIXELS } from "../../common/labels.ts";
import type { LoadedModel, ModelSlot } from "../inference/mod.ts";
import { spaceOf } from "../latents/routes.ts";
import { applyPath, type Translator } from "../latents/translate.ts";
import { GalleryStore } from "./store.ts";
import { FRESH, PENDING, TRANSLATED, VectorIndex } from "./vectors.ts";

export interface GalleryOptions {
  slot: ModelSlot;
  translator: Translator;
  /** Items per re-embedding batch (default 32). */
  batch?: number;
  /**
   * Least pause between re-embedding batches, ms (default 5); the pause is also at least as
   * long as the batch took, so re-embedding takes at most half of the time and requests keep
   * their latency.
   */
  pauseMs?: number;
  log?: (line: string) => void;
}

export interface NewItem {
  id: string;
  /** 784 bytes, Fashion-MNIST layout (what the model sees). */
  pixels: Uint8Array;
  metadata?: unknown;
}

export interface GalleryStatus {
  items: number;
  latentSpace: string | null;
  fresh: number;
  translated: number;
  pending: number;
  reembedding: { space: string; done: number; total: number } | null;
  /** True when every searchable latent was computed by the active model. */
  consistent: boolean;
  /** "clusters" once the search index is built, "scan" for a linear scan (small galleries). */
  search: "clusters" | "scan";
}

export interface Hit {
  id: string;
  distance: number;
  translated: boolean;
  metadata: unknown;
}

type Options = Required<GalleryOptions>;

// Ids are any printable text: control characters would break logs and URLs.
// deno-lint-ignore no-control-regex
const ID = /^[^\u0000-\u001f]{1,200}$/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Gallery {
  readonly store: GalleryStore;
  readonly index: VectorIndex;
  /** The latent space the index is aligned to (null before the first model). */
  space: string | null = null;
  /** Space of each row's latent as stored (the index's rows). */
  #rowSpace: (string | null)[] = [];
  #opts: Options;
  #gen = 0;
  #aligning: Promise<void> | null = null;
  #reembed: { space: string; done: number; total: number; task: Promise<void> } | null = null;
  reembedded = 0;
  #closed = false;

  private constructor(store: GalleryStore, opts: GalleryOptions) {
    this.store = store;
    this.#opts = {
      ...opts,
      batch: opts.batch ?? 32,
      pauseMs: opts.pauseMs ?? 5,
      log: opts.log ?? ((l) => console.log(l)),
    };
    const rows = store.rows();
    const dim = rows.find((r) => r.latent)?.latent?.length ?? 1;
    this.index = new VectorIndex(dim, Math.max(1024, rows.length));
    for (const r of rows) {
      const ok = r.latent && r.latent.length === dim;
      this.index.set(r.id, ok ? r.latent : null, r.translated ? TRANSLATED : FRESH);
      this.#rowSpace.push(ok ? r.space : null);
    }
    if (this.index.needsRebuild) void this.index.rebuild();
  }

  /** Opens the database at `path` (GalleryError when unusable) and loads its latents. */
  static open(path: string, opts: GalleryOptions): Gallery {
    return new Gallery(GalleryStore.open(path), opts);
  }

  status(): GalleryStatus {
    const c = this.index.counts();
    const r = this.#reembed;
    return {
      items: this.index.size,
      latentSpace: this.space,
      ...c,
      reembedding: r ? { space: r.space, done: r.done, total: r.total } : null,
      consistent: c.translated === 0 && c.pending === 0,
      search: this.index.clustered ? "clusters" : "scan",
    };
  }

  /** Aligns the gallery with `m` when it is not yet (after a swap); resolves once aligned. */
  async align(m: LoadedModel): Promise<void> {
    while (this.space !== spaceOf(m) || this.#aligning) {
      if (this.#aligning) {
        await this.#aligning;
        continue;
      }
      this.#aligning = this.#alignTo(m).finally(() => (this.#aligning = null));
    }
  }

  async #alignTo(m: LoadedModel): Promise<void> {
    const S = spaceOf(m), L = m.latentSize, gen = ++this.#gen;
    const old = { data: this.index.data.slice(), dim: this.index.dim, ids: [...this.index.ids] };
    const oldState = this.index.state.slice();
    if (L !== this.index.dim) {
      this.index.clear(L);
      old.ids.forEach((id) => id && this.index.set(id, null, PENDING));
    }
    // Group the rows that are not in S by the space their latent is in, then translate each
    // group whose space has a usable map into S.
    const groups = new Map<string, number[]>();
    old.ids.forEach((id, row) => {
      if (!id || oldState[row] === PENDING) return;
      const sp = this.#rowSpace[row];
      if (sp === S && L === old.dim) return;
      if (sp) groups.set(sp, [...(groups.get(sp) ?? []), row]);
    });
    const rowSpace: (string | null)[] = L === old.dim ? this.#rowSpace : old.ids.map(() => null);
    for (const [from, rows] of groups) {
      let path;
      try {
        path = await this.#opts.translator.path(m.dir, m.manifest, from);
      } catch (e) {
        this.#opts.log(
          `gallery: ${rows.length} item(s) in space ${from} wait for re-embedding: ${
            (e as Error).message
          }`,
        );
        for (const row of rows) if (L === old.dim) this.index.update(row, null, PENDING);
        continue;
      }
      if (path.fromSize !== old.dim) {
        for (const row of rows) if (L === old.dim) this.index.update(row, null, PENDING);
        continue;
      }
      const x = new Float32Array(rows.length * old.dim);
      rows.forEach((row, i) =>
        x.set(old.data.subarray(row * old.dim, (row + 1) * old.dim), i * old.dim)
      );
      // In chunks with a yield between: a large gallery takes seconds to translate, and
      // requests (searches wait for the alignment; classification does not) keep flowing.
      for (let s0 = 0; s0 < rows.length; s0 += 500) {
        const part = rows.slice(s0, s0 + 500);
        const y = applyPath(
          path,
          x.subarray(s0 * old.dim, (s0 + part.length) * old.dim),
          part.length,
        );
        this.store.transaction(() => {
          part.forEach((row, i) => {
            const id = old.ids[row];
            const v = y.subarray(i * L, (i + 1) * L);
            this.index.set(id, v, TRANSLATED);
            rowSpace[this.index.rowOf(id)!] = S;
            this.store.setLatent(id, v, S, true);
          });
        });
        await sleep(0);
      }
    }
    this.#rowSpace = rowSpace;
    this.space = S;
    // Translated vectors moved, but re-clustering now would be undone by the re-embedding:
    // the index is rebuilt once that finishes (a new size has no clusters at all until then).
    if (L !== old.dim) void this.index.rebuild();
    this.#startReembed(S, gen);
  }

  /** Re-embeds, in the background, every item whose latent is not fresh in space S. */
  #startReembed(S: string, gen: number): void {
    const todo: string[] = [];
    for (let r = 0; r < this.index.rowCount; r++) {
      if (this.index.ids[r] && (this.index.state[r] !== FRESH || this.#rowSpace[r] !== S)) {
        todo.push(this.index.ids[r]);
      }
    }
    if (!todo.length) {
      this.#reembed = null;
      return;
    }
    const job = { space: S, done: 0, total: todo.length, task: Promise.resolve() };
    this.#reembed = job;
    const t0 = performance.now();
    job.task = (async () => {
      for (
        let i = 0;
        i < todo.length && gen === this.#gen && !this.#closed;
        i += this.#opts.batch
      ) {
        const started = performance.now();
        const ids = todo.slice(i, i + this.#opts.batch).filter((id) =>
          this.index.rowOf(id) !== undefined
        );
        let failure = "";
        const ok = await this.#opts.slot.use(async (m) => {
          if (spaceOf(m) !== S) return false; // swapped again: the next alignment takes over
          await this.#embedInto(m, ids.map((id) => ({ id, pixels: null })));
          return true;
        }).catch((e) => (failure = (e as Error).message, false));
        if (!ok) {
          if (gen === this.#gen && failure) {
            // Not swapped: the model failed. Stop, keep what is translated, say so.
            this.#reembed = null;
            this.#opts.log(`gallery: re-embedding stopped at ${job.done}/${job.total}: ${failure}`);
          }
          return;
        }
        job.done += ids.length;
        this.reembedded += ids.length;
        // At most half the time: the pause is at least as long as the batch took.
        await sleep(Math.max(this.#opts.pauseMs, performance.now() - started));
      }
      if (gen === this.#gen && !this.#closed) {
        this.#reembed = null;
        this.#opts.log(
          `gallery: re-embedded ${job.total} item(s) into space ${S} in ${
            Math.round(performance.now() - t0)
          } ms`,
        );
        if (this.index.needsRebuild) void this.index.rebuild();
      }
    })();
  }

  /** Encodes items (images given, or read from the store) with m and stores their latents. */
  async #embedInto(
    m: LoadedModel,
    items: { id: string; pixels: Uint8Array | null; metadata?: unknown }[],
  ) {
    if (!items.length) return;
    const px = new Uint8Array(items.length * PIXELS);
    const missing = items.filter((it) => !it.pixels).map((it) => it.id);
    const stored = missing.length ? this.store.pixelsOf(missing) : null;
    let j = 0;
    items.forEach((it, i) =>
      px.set(it.pixels ?? stored!.subarray(j++ * PIXELS, j * PIXELS), i * PIXELS)
    );
    const out = await m.encode(Float32Array.from(px, (v) => v / 255), items.length);
    const L = m.latentSize, S = spaceOf(m);
    if (this.space !== S) return; // swapped meanwhile; the next alignment re-embeds these
    this.store.transaction(() => {
      items.forEach((it, i) => {
        const mu = out.mu.slice(i * L, (i + 1) * L);
        if (it.pixels) {
          this.store.put({
            id: it.id,
            pixels: it.pixels,
            metadata: it.metadata,
            latent: mu,
            space: S,
          });
        } else if (this.index.rowOf(it.id) === undefined) {
          return; // removed while it was being embedded
        } else {
          this.store.setLatent(it.id, mu, S, false);
        }
        const row = this.index.set(it.id, mu, FRESH);
        this.#rowSpace[row] = S;
      });
    });
  }

  /** Adds (or replaces) items, embedding them with the model serving now. */
  async add(items: NewItem[]): Promise<void> {
    for (const it of items) {
      if (typeof it.id !== "string" || !ID.test(it.id)) {
        throw new Error(`Item id ${JSON.stringify(it.id)} must be 1-200 printable characters`);
      }
      if (it.pixels.length !== PIXELS) {
        throw new Error(`Item ${it.id}: ${it.pixels.length} pixels, expected ${PIXELS}`);
      }
    }
    await this.#opts.slot.use(async (m) => {
      await this.align(m);
      for (let i = 0; i < items.length; i += 256) await this.#embedInto(m, items.slice(i, i + 256));
    });
    if (this.index.needsRebuild) void this.index.rebuild();
  }

  remove(id: string): boolean {
    const inStore = this.store.remove(id);
    return this.index.remove(id) || inStore;
  }

  /** The k items nearest to `q`, a latent in the gallery's (the active model's) space. */
  search(q: Float32Array, k: number): Hit[] {
    const r = this.index.search(q, k);
    const ids = Array.from(r.rows, (row) => this.index.ids[row]);
    const meta = this.store.metadataOf(ids);
    return ids.map((id, i) => ({
      id,
      distance: r.distances[i],
      translated: this.index.state[r.rows[i]] === TRANSLATED,
      metadata: meta.get(id) ?? null,
    }));
  }

  /** Resolves once no alignment or re-embedding is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#aligning || this.#reembed) {
      await this.#aligning;
      await this.#reembed?.task;
      if (this.#reembed && !this.#aligning) await sleep(1);
    }
  }

  /** Prometheus lines for /metrics. */
  metricsText(): string {
    const s = this.status();
    return [
      "# HELP gallery_items Gallery items by the state of their latent (fresh, translated, pending).",
      "# TYPE gallery_items gauge",
      `gallery_items{state="fresh"} ${s.fresh}`,
      `gallery_items{state="translated"} ${s.translated}`,
      `gallery_items{state="pending"} ${s.pending}`,
      "# HELP gallery_reembed_remaining Items still to re-embed with the active model.",
      "# TYPE gallery_reembed_remaining gauge",
      `gallery_reembed_remaining ${s.reembedding ? s.reembedding.total - s.reembedding.done : 0}`,
      "# HELP gallery_reembedded_total Items re-embedded after hot swaps.",
      "# TYPE gallery_reembedded_total counter",
      `gallery_reembedded_total ${this.reembedded}`,
      "",
    ].join("\n");
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#reembed?.task;
    await this.#aligning;
    this.store.close();
  }
}
