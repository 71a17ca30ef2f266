/**
 * The gallery's in-memory vectors and their search index. Rows are appended (an id keeps its
 * row until it is removed; removed rows become tombstones), each with a state: fresh (computed
 * by the model of the gallery's space), translated (mapped from an earlier space, awaiting
 * re-embedding) or pending (no usable latent yet, never returned).
 *
 * Search is exact. Below a few thousand rows it is a linear scan (common/knn.ts); above, rows
 * are grouped around k-means centroids, and a query scans clusters in order of the lower bound
 * |q - centroid| - radius on the distance of any of their members, stopping once that bound
 * exceeds the current k-th distance (the triangle inequality makes the skip exact). Changes
 * keep the clusters exact without a rebuild: a changed vector stays in its cluster and widens
 * the radius if needed, a new row joins the nearest centroid. rebuild() re-clusters, yielding
 * to the event loop between chunks so searches keep being answered.
 */
import { nearest } from "../../common/knn.ts";

export const FRESH = 0, TRANSLATED = 1, PENDING = 2, DELETED = 3;
export type RowState = typeof FRESH | typeof TRANSLATED | typeof PENDING | typeof DELETED;

/** Below this many rows a linear scan is as fast as the clusters; no index is kept. */
const INDEX_MIN_ROWS = 2048;

interface Clusters {
  centroids: Float32Array;
  count: number;
  radius: Float64Array;
  members: Int32Array[];
  sizes: Int32Array;
  /** Cluster of each row (-1: none). */
  of: Int32Array;
  builtRows: number;
}

const yieldNow = () => new Promise<void>((r) => setTimeout(r, 0));

export class VectorIndex {
  dim: number;
  ids: string[] = [];
  #rows = new Map<string, number>();
  data: Float32Array;
  state: Uint8Array;
  #clusters: Clusters | null = null;
  #building: Promise<void> | null = null;
  /** Rows changed while a rebuild runs (re-placed once it finishes). */
  #changedDuringBuild: Set<number> | null = null;

  constructor(dim: number, capacity = 1024) {
    this.dim = dim;
    this.data = new Float32Array(capacity * dim);
    this.state = new Uint8Array(capacity);
  }

  get size(): number {
    return this.#rows.size;
  }

  get rowCount(): number {
    return this.ids.length;
  }

  rowOf(id: string): number | undefined {
    return this.#rows.get(id);
  }

  /** Counts rows by state (deleted rows excluded). */
  counts(): { fresh: number; translated: number; pending: number } {
    const c = [0, 0, 0, 0];
    for (let r = 0; r < this.ids.length; r++) c[this.state[r]]++;
    return { fresh: c[FRESH], translated: c[TRANSLATED], pending: c[PENDING] };
  }

  #grow(): void {
    const cap = Math.max(1024, this.state.length * 2);
    const data = new Float32Array(cap * this.dim);
    data.set(this.data.subarray(0, this.ids.length * this.dim));
    const state = new Uint8Array(cap);
    state.set(this.state.subarray(0, this.ids.length));
    this.data = data;
    this.state = state;
    if (this.#clusters) {
      const of = new Int32Array(cap).fill(-1);
      of.set(this.#clusters.of.subarray(0, this.ids.length));
      this.#clusters.of = of;
    }
  }

  /** Adds or replaces `id`'s vector (null: pending). Returns its row. */
  set(id: string, vec: ArrayLike<number> | null, state: RowState = FRESH): number {
    let row = this.#rows.get(id);
    if (row === undefined) {
      if (this.ids.length >= this.state.length) this.#grow();
      row = this.ids.length;
      this.ids.push(id);
      this.#rows.set(id, row);
    }
    this.update(row, vec, vec ? state : PENDING);
    return row;
  }

  /** Replaces the vector of an existing row, keeping the index exact. */
  update(row: number, vec: ArrayLike<number> | null, state: RowState): void {
    const o = row * this.dim;
    if (vec) { for (let j = 0; j < this.dim; j++) this.data[o + j] = vec[j]; }
    this.state[row] = vec ? state : PENDING;
    this.#changedDuringBuild?.add(row);
    const cl = this.#clusters;
    if (cl && vec) this.#place(cl, row);
  }

  remove(id: string): boolean {
    const row = this.#rows.get(id);
    if (row === undefined) return false;
    this.#rows.delete(id);
    this.state[row] = DELETED;
    this.ids[row] = "";
    return true;
  }

  /** Drops everything and switches to vectors of `dim` values (a model with another size). */
  clear(dim = this.dim): void {
    this.dim = dim;
    this.ids = [];
    this.#rows.clear();
    this.data = new Float32Array(1024 * dim);
    this.state = new Uint8Array(1024);
    this.#clusters = null;
  }

  /** Puts `row` in a cluster: its current one (radius widened) or, when new, the nearest. */
  #place(cl: Clusters, row: number): void {
    const d = this.dim, o = row * d;
    let c = cl.of[row];
    if (c < 0) {
      c = nearest(cl.centroids, d, cl.count, this.data.subarray(o, o + d), 1).index[0];
      if (cl.sizes[c] >= cl.members[c].length) {
        const m = new Int32Array(Math.max(8, cl.members[c].length * 2));
        m.set(cl.members[c]);
        cl.members[c] = m;
      }
      cl.members[c][cl.sizes[c]++] = row;
      cl.of[row] = c;
    }
    let s = 0;
    for (let j = 0; j < d; j++) s += (this.data[o + j] - cl.centroids[c * d + j]) ** 2;
    const r = Math.sqrt(s);
    if (r > cl.radius[c]) cl.radius[c] = r;
  }

  /** The k nearest searchable rows (fresh or translated) to q. */
  search(q: ArrayLike<number>, k: number): { rows: Int32Array; distances: Float32Array } {
    const cl = this.#clusters;
    if (!cl) {
      const r = nearest(
        this.data,
        this.dim,
        this.ids.length,
        q,
        k,
        (row) => this.state[row] > TRANSLATED,
      );
      return { rows: r.index, distances: r.distance };
    }
    return this.#clusterSearch(cl, q, k);
  }

  #clusterSearch(cl: Clusters, q: ArrayLike<number>, k: number) {
    const d = this.dim, C = cl.count, data = this.data, state = this.state;
    const lower = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (cl.centroids[c * d + j] - q[j]) ** 2;
      lower[c] = Math.max(0, Math.sqrt(s) - cl.radius[c]);
    }
    const order = Array.from({ length: C }, (_, c) => c).sort((a, b) => lower[a] - lower[b]);
    const bestI = new Int32Array(k).fill(-1), bestD = new Float64Array(k).fill(Infinity);
    let filled = 0, worst = Infinity;
    for (const c of order) {
      if (filled === k && lower[c] * lower[c] >= worst) break;
      const m = cl.members[c], size = cl.sizes[c];
      for (let i = 0; i < size; i++) {
        const row = m[i];
        if (state[row] > TRANSLATED || cl.of[row] !== c) continue;
        const o = row * d;
        let s = 0;
        for (let j = 0; j < d && s < worst; j++) {
          const t = data[o + j] - q[j];
          s += t * t;
        }
        if (s >= worst) continue;
        let p = filled < k ? filled++ : k - 1;
        while (p > 0 && bestD[p - 1] > s) {
          bestD[p] = bestD[p - 1];
          bestI[p] = bestI[p - 1];
          p--;
        }
        bestD[p] = s;
        bestI[p] = row;
        if (filled === k) worst = bestD[k - 1];
      }
    }
    const distances = new Float32Array(filled);
    for (let i = 0; i < filled; i++) distances[i] = Math.sqrt(bestD[i]);
    return { rows: bestI.slice(0, filled), distances };
  }

  /** Whether the index is worth (re)building: big enough and grown since the last build. */
  get needsRebuild(): boolean {
    const n = this.size;
    if (n < INDEX_MIN_ROWS) return false;
    return !this.#clusters || this.ids.length > 1.5 * this.#clusters.builtRows;
  }

  /** Re-clusters all searchable rows in the background (one build at a time). */
  rebuild(): Promise<void> {
    this.#building ??= this.#build().finally(() => (this.#building = null));
    return this.#building;
  }

  async #build(): Promise<void> {
    const d = this.dim, n = this.ids.length;
    this.#changedDuringBuild = new Set();
    const live: number[] = [];
    for (let r = 0; r < n; r++) if (this.state[r] <= TRANSLATED) live.push(r);
    if (live.length < INDEX_MIN_ROWS) {
      this.#clusters = null;
      this.#changedDuringBuild = null;
      return;
    }
    const C = Math.min(1024, Math.max(16, Math.round(Math.sqrt(live.length) * 1.5)));
    // k-means on a sample (evenly spaced rows: deterministic), then every row to its nearest.
    const step = Math.max(1, Math.floor(live.length / (C * 16)));
    const sample = live.filter((_, i) => i % step === 0);
    const centroids = new Float32Array(C * d);
    for (let c = 0; c < C; c++) {
      const r = sample[Math.floor((c * sample.length) / C)];
      centroids.set(this.data.subarray(r * d, r * d + d), c * d);
    }
    for (let it = 0; it < 8; it++) {
      const sum = new Float64Array(C * d), cnt = new Int32Array(C);
      for (let i = 0; i < sample.length; i++) {
        const r = sample[i], v = this.data.subarray(r * d, r * d + d);
        const c = nearest(centroids, d, C, v, 1).index[0];
        cnt[c]++;
        for (let j = 0; j < d; j++) sum[c * d + j] += v[j];
        if (i % 2048 === 2047) await yieldNow();
      }
      for (let c = 0; c < C; c++) {
        if (cnt[c]) { for (let j = 0; j < d; j++) centroids[c * d + j] = sum[c * d + j] / cnt[c]; }
      }
    }
    if (this.dim !== d) return (this.#changedDuringBuild = null, undefined); // cleared meanwhile
    const of = new Int32Array(this.state.length).fill(-1);
    const cl: Clusters = {
      centroids,
      count: C,
      radius: new Float64Array(C),
      members: Array.from({ length: C }, () => new Int32Array(8)),
      sizes: new Int32Array(C),
      of,
      builtRows: n,
    };
    for (let i = 0; i < live.length; i++) {
      if (this.state[live[i]] <= TRANSLATED) this.#place(cl, live[i]);
      if (i % 2048 === 2047) await yieldNow();
    }
    if (this.dim !== d) return (this.#changedDuringBuild = null, undefined);
    if (cl.of.length < this.state.length) {
      const grown = new Int32Array(this.state.length).fill(-1);
      grown.set(cl.of);
      cl.of = grown;
    }
    // Rows added or changed while building: place them now, synchronously, before switching.
    for (const r of this.#changedDuringBuild) if (this.state[r] <= TRANSLATED) this.#place(cl, r);
    for (let r = n; r < this.ids.length; r++) if (this.state[r] <= TRANSLATED) this.#place(cl, r);
    this.#changedDuringBuild = null;
    this.#clusters = cl;
  }
}
