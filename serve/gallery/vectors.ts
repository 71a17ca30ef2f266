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
  /** Per cluster: member rows, a copy of their vectors (contiguous, so a scan reads memory in
   * order) and each member's distance to the centroid (a per-member lower bound). */
  members: Int32Array[];
  vecs: Float32Array[];
  toCentre: Float64Array[];
  sizes: Int32Array;
  /** Cluster of each row (-1: none) and its position in that cluster. */
  of: Int32Array;
  pos: Int32Array;
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
  #counts: { fresh: number; translated: number; pending: number } | null = null;
  /** Vectors changed in place since the clusters were built (each may widen a radius). */
  #moved = 0;

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

  /** Whether searches use the clusters (false: linear scan). */
  get clustered(): boolean {
    return this.#clusters !== null;
  }

  /** Counts rows by state (deleted rows excluded); cached until the next change. */
  counts(): { fresh: number; translated: number; pending: number } {
    if (!this.#counts) {
      const c = [0, 0, 0, 0];
      for (let r = 0; r < this.ids.length; r++) c[this.state[r]]++;
      this.#counts = { fresh: c[FRESH], translated: c[TRANSLATED], pending: c[PENDING] };
    }
    return this.#counts;
  }

  #grow(): void {
    const cap = Math.max(1024, this.state.length * 2);
    const data = new Float32Array(cap * this.dim);
    data.set(this.data.subarray(0, this.ids.length * this.dim));
    const state = new Uint8Array(cap);
    state.set(this.state.subarray(0, this.ids.length));
    this.data = data;
    this.state = state;
    if (this.#clusters) growRows(this.#clusters, cap);
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
    this.#counts = null;
    this.#changedDuringBuild?.add(row);
    const cl = this.#clusters;
    if (cl && vec) {
      if (cl.of[row] >= 0) this.#moved++;
      this.#place(cl, row);
    }
  }

  remove(id: string): boolean {
    const row = this.#rows.get(id);
    if (row === undefined) return false;
    this.#rows.delete(id);
    this.state[row] = DELETED;
    this.ids[row] = "";
    this.#counts = null;
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
    this.#counts = null;
  }

  /** Puts `row` in a cluster: its current one (radius widened) or, when new, the nearest. */
  #place(cl: Clusters, row: number): void {
    const d = this.dim, o = row * d, v = this.data.subarray(o, o + d);
    let c = cl.of[row];
    if (c < 0) {
      c = nearest(cl.centroids, d, cl.count, v, 1).index[0];
      if (cl.sizes[c] >= cl.members[c].length) {
        const cap = Math.max(8, cl.members[c].length * 2);
        const m = new Int32Array(cap), x = new Float32Array(cap * d), t = new Float64Array(cap);
        m.set(cl.members[c]);
        x.set(cl.vecs[c]);
        t.set(cl.toCentre[c]);
        cl.members[c] = m;
        cl.vecs[c] = x;
        cl.toCentre[c] = t;
      }
      cl.pos[row] = cl.sizes[c]++;
      cl.members[c][cl.pos[row]] = row;
      cl.of[row] = c;
    }
    const p = cl.pos[row];
    cl.vecs[c].set(v, p * d);
    let s = 0;
    for (let j = 0; j < d; j++) s += (v[j] - cl.centroids[c * d + j]) ** 2;
    const r = Math.sqrt(s);
    cl.toCentre[c][p] = r;
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
    const d = this.dim, C = cl.count, state = this.state;
    const lower = new Float64Array(C), centre = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (cl.centroids[c * d + j] - q[j]) ** 2;
      centre[c] = Math.sqrt(s);
      lower[c] = Math.max(0, centre[c] - cl.radius[c]);
    }
    const heap = new ClusterHeap(lower);
    const bestI = new Int32Array(k).fill(-1), bestD = new Float64Array(k).fill(Infinity);
    let filled = 0, worst = Infinity, worstRoot = Infinity;
    for (let c = heap.pop(); c >= 0; c = heap.pop()) {
      if (filled === k && lower[c] * lower[c] >= worst) break;
      const m = cl.members[c], x = cl.vecs[c], t = cl.toCentre[c], size = cl.sizes[c];
      const dc = centre[c];
      for (let i = 0; i < size; i++) {
        // |d(q, centre) - d(p, centre)| <= d(q, p): most members are rejected here unread.
        const gap = dc - t[i];
        if (gap >= worstRoot || -gap >= worstRoot) continue;
        const row = m[i];
        if (state[row] > TRANSLATED) continue;
        const o = i * d;
        let s = 0;
        for (let j = 0; j < d && s < worst; j++) {
          const e = x[o + j] - q[j];
          s += e * e;
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
        if (filled === k) {
          worst = bestD[k - 1];
          worstRoot = Math.sqrt(worst);
        }
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
    // Re-cluster after growth, or once half the vectors moved (a re-embedding): moved vectors
    // stay exact but widen their clusters, which makes searches read more.
    const b = this.#clusters?.builtRows ?? 0;
    return !this.#clusters || this.ids.length > 1.5 * b || this.#moved > b / 2;
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
    // Small chunks between yields: the build shares the thread with requests.
    for (let it = 0; it < 8; it++) {
      const sum = new Float64Array(C * d), cnt = new Int32Array(C);
      for (let i = 0; i < sample.length; i++) {
        const r = sample[i], v = this.data.subarray(r * d, r * d + d);
        const c = nearest(centroids, d, C, v, 1).index[0];
        cnt[c]++;
        for (let j = 0; j < d; j++) sum[c * d + j] += v[j];
        if (i % 256 === 255) await yieldNow();
      }
      for (let c = 0; c < C; c++) {
        if (cnt[c]) { for (let j = 0; j < d; j++) centroids[c * d + j] = sum[c * d + j] / cnt[c]; }
      }
    }
    if (this.dim !== d) return (this.#changedDuringBuild = null, undefined); // cleared meanwhile
    const cl: Clusters = {
      centroids,
      count: C,
      radius: new Float64Array(C),
      members: Array.from({ length: C }, () => new Int32Array(8)),
      vecs: Array.from({ length: C }, () => new Float32Array(8 * d)),
      toCentre: Array.from({ length: C }, () => new Float64Array(8)),
      sizes: new Int32Array(C),
      of: new Int32Array(this.state.length).fill(-1),
      pos: new Int32Array(this.state.length),
      builtRows: n,
    };
    for (let i = 0; i < live.length; i++) {
      if (this.state[live[i]] <= TRANSLATED) this.#place(cl, live[i]);
      if (i % 256 === 255) await yieldNow();
    }
    if (this.dim !== d) return (this.#changedDuringBuild = null, undefined);
    if (cl.of.length < this.state.length) growRows(cl, this.state.length);
    // Rows added or changed while building: place them now, synchronously, before switching.
    for (const r of this.#changedDuringBuild) if (this.state[r] <= TRANSLATED) this.#place(cl, r);
    for (let r = n; r < this.ids.length; r++) if (this.state[r] <= TRANSLATED) this.#place(cl, r);
    this.#changedDuringBuild = null;
    this.#clusters = cl;
    this.#moved = 0;
  }
}

/** Extends the per-row arrays of `cl` to `cap` rows. */
function growRows(cl: Clusters, cap: number): void {
  const of = new Int32Array(cap).fill(-1), pos = new Int32Array(cap);
  of.set(cl.of.subarray(0, Math.min(cap, cl.of.length)));
  pos.set(cl.pos.subarray(0, Math.min(cap, cl.pos.length)));
  cl.of = of;
  cl.pos = pos;
}

/** Clusters by ascending lower bound, popped lazily: a query usually visits only a few. */
class ClusterHeap {
  #a: Int32Array;
  #n: number;
  constructor(readonly key: Float64Array) {
    this.#n = key.length;
    this.#a = Int32Array.from({ length: key.length }, (_, i) => i);
    for (let i = (this.#n >> 1) - 1; i >= 0; i--) this.#down(i);
  }
  #down(i: number): void {
    const a = this.#a, key = this.key, n = this.#n;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < n && key[a[l]] < key[a[m]]) m = l;
      if (r < n && key[a[r]] < key[a[m]]) m = r;
      if (m === i) return;
      const t = a[i];
      a[i] = a[m];
      a[m] = t;
      i = m;
    }
  }
  /** The cluster with the smallest key left, or -1. */
  pop(): number {
    if (this.#n === 0) return -1;
    const top = this.#a[0];
    this.#a[0] = this.#a[--this.#n];
    this.#down(0);
    return top;
  }
}
