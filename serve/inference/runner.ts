/**
 * The adaptive micro-batcher in front of one Session: it queues one-image (or few-image) jobs
 * and coalesces them into batched runs, the way Triton's dynamic batcher and BentoML's adaptive
 * batching do. Policy, in order:
 *   - a job that finds a free lane and no run in flight runs at once (no delay when idle); for an
 *     in-process session (Session.inline) "at once" is the end of the current event-loop turn,
 *     so the jobs whose handlers ran in the same turn share the run;
 *   - while a run is in flight, a free lane (pooled sessions, see worker.ts) waits for the
 *     queue to reach maxBatch rows, but never longer than maxQueueDelayMs after the oldest
 *     queued job arrived, so a lone request is delayed at most by that bound;
 *   - a lane that finishes a run takes everything waiting (up to maxBatch rows) at once, so
 *     batch size grows with load by itself.
 * A session with `concurrency` > 1 (a pool of workers) gets that many runs in flight; wasm
 * sessions themselves are never re-entered, each lane being its own worker. Every input and
 * output is split and joined along the first (batch) dimension, so each caller sees its own
 * rows only, in order. When a batch of several jobs fails, each job is retried alone, so one
 * bad job fails by itself instead of taking its neighbours down with it.
 * Fairness under mixed load: a job of more than `chunkRows` rows is split into chunks of that
 * size, and a run takes every waiting small job first but at most `chunkRows` rows of chunks,
 * so a one-image request waits for at most one short run, not for whole 256-image batches of
 * other clients; the large ones still progress at every run and finish with their rows joined.
 */
import { computeSeconds, type Session, type TensorData } from "./backend.ts";

/** What one dispatched run carried (for metrics). */
export interface BatchStats {
  /** Jobs (requests) merged into the run. */
  jobs: number;
  /** Seconds each job waited in the queue, from run() to dispatch. */
  waits: number[];
}

export interface RunnerOptions {
  /** Largest number of rows in one run; a single job above it is refused. */
  maxBatch: number;
  /**
   * Longest a queued job waits for a fuller batch while another run is in flight, ms (0: a free
   * lane always takes the queue at once). Never applies when nothing is running.
   */
  maxQueueDelayMs?: number;
  /**
   * Jobs above this many rows are split into chunks of it, and a run carries at most this many
   * rows of chunks beside all waiting small jobs (0: no splitting, arrival order only).
   */
  chunkRows?: number;
  /** Called with the row count of every run, when it is dispatched (for metrics). */
  onBatch?: (rows: number, stats: BatchStats) => void;
  /**
   * Called for every completed run: its wall time as seen here and the part spent computing
   * (the same for in-process sessions; less for a worker's, see backend.ts computeSeconds), s.
   */
  onRun?: (seconds: number, rows: number, compute: number) => void;
}

interface Job {
  feeds: Record<string, TensorData>;
  rows: number;
  queued: number;
  /** Part of a larger job (see RunnerOptions.chunkRows). */
  chunk: boolean;
  resolve: (out: Record<string, TensorData>) => void;
  reject: (e: unknown) => void;
}

function rowSize(t: TensorData): number {
  return t.dims.slice(1).reduce((a, b) => a * b, 1);
}

export class BatchRunner {
  #queue: Job[] = [];
  #queuedRows = 0;
  #inflight = 0;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #gathering = false;
  #closed = false;
  readonly lanes: number;
  readonly maxQueueDelayMs: number;
  readonly chunkRows: number;

  constructor(readonly session: Session, readonly opts: RunnerOptions) {
    this.lanes = Math.max(1, session.concurrency ?? 1);
    this.maxQueueDelayMs = Math.max(0, opts.maxQueueDelayMs ?? 0);
    this.chunkRows = Math.max(0, Math.floor(opts.chunkRows ?? 0));
  }

  /** Runs `feeds` (every tensor shaped [rows, ...]) and resolves with this job's outputs. */
  run(feeds: Record<string, TensorData>): Promise<Record<string, TensorData>> {
    if (this.#closed) {
      return Promise.reject(new Error("the session was released; the model is being unloaded"));
    }
    const names = Object.keys(feeds);
    if (names.length === 0) return Promise.reject(new Error("run() needs at least one input"));
    const rows = feeds[names[0]].dims[0];
    for (const n of names) {
      const t = feeds[n];
      if (t.dims[0] !== rows) {
        return Promise.reject(
          new Error(`input "${n}" has ${t.dims[0]} rows, "${names[0]}" has ${rows}`),
        );
      }
      if (t.data.length !== rows * rowSize(t)) {
        return Promise.reject(
          new Error(
            `input "${n}" holds ${t.data.length} values, dims ${JSON.stringify(t.dims)} need ${
              rows * rowSize(t)
            }`,
          ),
        );
      }
    }
    if (rows < 1 || rows > this.opts.maxBatch) {
      return Promise.reject(new Error(`a run takes 1..${this.opts.maxBatch} rows, got ${rows}`));
    }
    if (this.chunkRows > 0 && rows > this.chunkRows) {
      const parts: Promise<Record<string, TensorData>>[] = [];
      for (let from = 0; from < rows; from += this.chunkRows) {
        parts.push(this.#enqueue(slice(feeds, from, Math.min(rows, from + this.chunkRows)), true));
      }
      return Promise.all(parts).then(concat);
    }
    return this.#enqueue(feeds, false);
  }

  #enqueue(feeds: Record<string, TensorData>, chunk: boolean) {
    const rows = feeds[Object.keys(feeds)[0]].dims[0];
    return new Promise<Record<string, TensorData>>((resolve, reject) => {
      this.#queue.push({ feeds, rows, queued: performance.now(), chunk, resolve, reject });
      this.#queuedRows += rows;
      this.#pump();
    });
  }

  /** Jobs waiting or runs in flight; 0 means the session is idle. */
  get pending(): number {
    return this.#queue.length + this.#inflight;
  }

  /** Refuses new jobs; jobs already queued still run. */
  close(): void {
    this.#closed = true;
  }

  /** Dispatches what the policy allows now, and arms the delay timer for the rest. */
  #pump(): void {
    if (this.session.inline && this.#inflight === 0 && this.#queue.length > 0) {
      // An in-process run blocks this thread, so every request whose handler is already due in
      // this turn of the event loop would wait for the next run: let them join this one. That
      // costs one turn (microseconds), not a timer.
      if (!this.#gathering) {
        this.#gathering = true;
        setImmediate(() => {
          this.#gathering = false;
          if (this.#inflight === 0 && this.#queue.length > 0) void this.#dispatch(this.#take());
        });
      }
      return;
    }
    while (this.#queue.length > 0 && this.#inflight < this.lanes) {
      if (this.#inflight > 0 && this.#queuedRows < this.opts.maxBatch) {
        // Contention: another run is in flight, so waiting a little buys a fuller batch.
        const age = performance.now() - this.#queue[0].queued;
        if (age < this.maxQueueDelayMs) {
          this.#timer ??= setTimeout(() => {
            this.#timer = null;
            this.#pump();
          }, this.maxQueueDelayMs - age);
          return;
        }
      }
      void this.#dispatch(this.#take());
    }
    if (this.#timer !== null && this.#queue.length === 0) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  /**
   * Takes the oldest job, then, in arrival order, every small job that fits in the batch and
   * shares its row shape, and chunks only while they add up to at most chunkRows rows.
   */
  #take(): Job[] {
    const first = this.#queue.shift()!;
    const batch: Job[] = [first];
    let rows = first.rows, chunkRows = first.chunk ? first.rows : 0;
    const cap = this.chunkRows > 0 ? this.chunkRows : Infinity;
    for (let i = 0; i < this.#queue.length && rows < this.opts.maxBatch;) {
      const j = this.#queue[i];
      const fits = rows + j.rows <= this.opts.maxBatch && sameShape(first, j) &&
        (!j.chunk || chunkRows + j.rows <= cap);
      if (!fits) {
        if (this.chunkRows === 0) break; // arrival order only: nothing may jump the queue
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      batch.push(j);
      rows += j.rows;
      if (j.chunk) chunkRows += j.rows;
    }
    this.#queuedRows -= rows;
    return batch;
  }

  async #dispatch(batch: Job[]): Promise<void> {
    this.#inflight++;
    const rows = batch.reduce((n, j) => n + j.rows, 0);
    try {
      if (this.opts.onBatch) {
        const now = performance.now();
        this.opts.onBatch(rows, {
          jobs: batch.length,
          waits: batch.map((j) => (now - j.queued) / 1000),
        });
      }
      try {
        const out = await this.#timed(
          batch.length === 1 ? batch[0].feeds : join(batch, rows),
          rows,
        );
        settle(batch, rows, out);
      } catch (e) {
        if (batch.length === 1) {
          batch[0].reject(e);
        } else {
          // One job may be what broke the batch: run each alone so only that one fails.
          for (const j of batch) {
            try {
              j.resolve(await this.#timed(j.feeds, j.rows));
            } catch (e1) {
              j.reject(e1);
            }
          }
        }
      }
    } finally {
      this.#inflight--;
      this.#pump();
    }
  }

  async #timed(feeds: Record<string, TensorData>, rows: number) {
    const t0 = performance.now();
    const out = await this.session.run(feeds);
    const wall = (performance.now() - t0) / 1000;
    this.opts.onRun?.(wall, rows, computeSeconds.get(out) ?? wall);
    return out;
  }
}

/** Hands each job its own rows of `out`, in order. */
function settle(batch: Job[], rows: number, out: Record<string, TensorData>): void {
  if (batch.length === 1) {
    batch[0].resolve(out);
    return;
  }
  for (const [name, t] of Object.entries(out)) {
    if (t.dims[0] !== rows) {
      const e = new Error(`output "${name}" has ${t.dims[0]} rows for a batch of ${rows}`);
      for (const j of batch) j.reject(e);
      return;
    }
  }
  let offset = 0;
  for (const j of batch) {
    const mine: Record<string, TensorData> = {};
    for (const [name, t] of Object.entries(out)) {
      const w = rowSize(t);
      mine[name] = {
        data: t.data.slice(offset * w, (offset + j.rows) * w),
        dims: [j.rows, ...t.dims.slice(1)],
      };
    }
    j.resolve(mine);
    offset += j.rows;
  }
}

/** Rows [from, to) of every feed. */
function slice(feeds: Record<string, TensorData>, from: number, to: number) {
  const out: Record<string, TensorData> = {};
  for (const [name, t] of Object.entries(feeds)) {
    const w = rowSize(t);
    out[name] = { data: t.data.subarray(from * w, to * w), dims: [to - from, ...t.dims.slice(1)] };
  }
  return out;
}

/** The chunks' outputs joined back along the batch dimension, in order. */
function concat(parts: Record<string, TensorData>[]): Record<string, TensorData> {
  if (parts.length === 1) return parts[0];
  const out: Record<string, TensorData> = {};
  for (const name of Object.keys(parts[0])) {
    const ts = parts.map((p) => p[name]);
    const data = new Float32Array(ts.reduce((n, t) => n + t.data.length, 0));
    let o = 0;
    for (const t of ts) data.set(t.data, o), o += t.data.length;
    const rows = ts.reduce((n, t) => n + t.dims[0], 0);
    out[name] = { data, dims: [rows, ...ts[0].dims.slice(1)] };
  }
  return out;
}

function sameShape(a: Job, b: Job): boolean {
  const an = Object.keys(a.feeds), bn = Object.keys(b.feeds);
  if (an.length !== bn.length) return false;
  return an.every((n) =>
    b.feeds[n] && a.feeds[n].dims.slice(1).join() === b.feeds[n].dims.slice(1).join()
  );
}

function join(batch: Job[], rows: number): Record<string, TensorData> {
  const feeds: Record<string, TensorData> = {};
  for (const name of Object.keys(batch[0].feeds)) {
    const first = batch[0].feeds[name];
    const w = rowSize(first);
    const data = new Float32Array(rows * w);
    let o = 0;
    for (const j of batch) {
      data.set(j.feeds[name].data, o);
      o += j.feeds[name].data.length;
    }
    feeds[name] = { data, dims: [rows, ...first.dims.slice(1)] };
  }
  return feeds;
}
