/**
 * A queue in front of one Session that serialises runs and coalesces the requests waiting
 * behind a run into the next batch. Serialising is required for onnxruntime-web (one wasm heap,
 * no re-entrant runs); coalescing turns many concurrent one-image requests into one batched
 * run, which is where a small CPU model gains throughput. Every input and output is split and
 * joined along the first (batch) dimension, so the caller sees its own rows only.
 */
import type { Session, TensorData } from "./backend.ts";

export interface RunnerOptions {
  /** Largest number of rows in one run; a single job above it is refused. */
  maxBatch: number;
  /** Called with the row count of every run (for metrics). */
  onBatch?: (rows: number) => void;
}

interface Job {
  feeds: Record<string, TensorData>;
  rows: number;
  resolve: (out: Record<string, TensorData>) => void;
  reject: (e: unknown) => void;
}

function rowSize(t: TensorData): number {
  return t.dims.slice(1).reduce((a, b) => a * b, 1);
}

export class BatchRunner {
  #queue: Job[] = [];
  #running = false;
  #closed = false;

  constructor(readonly session: Session, readonly opts: RunnerOptions) {}

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
    return new Promise((resolve, reject) => {
      this.#queue.push({ feeds, rows, resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  /** Jobs waiting or running; 0 means the session is idle. */
  get pending(): number {
    return this.#queue.length + (this.#running ? 1 : 0);
  }

  /** Refuses new jobs; jobs already queued still run. */
  close(): void {
    this.#closed = true;
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        // Take jobs in arrival order while they fit in one batch.
        const batch: Job[] = [this.#queue.shift()!];
        let rows = batch[0].rows;
        while (
          this.#queue.length > 0 && rows + this.#queue[0].rows <= this.opts.maxBatch &&
          sameShape(batch[0], this.#queue[0])
        ) {
          const j = this.#queue.shift()!;
          batch.push(j);
          rows += j.rows;
        }
        await this.#runBatch(batch, rows);
      }
    } finally {
      this.#running = false;
    }
  }

  async #runBatch(batch: Job[], rows: number): Promise<void> {
    let out: Record<string, TensorData>;
    try {
      const feeds = batch.length === 1 ? batch[0].feeds : join(batch, rows);
      this.opts.onBatch?.(rows);
      out = await this.session.run(feeds);
    } catch (e) {
      for (const j of batch) j.reject(e);
      return;
    }
    if (batch.length === 1) {
      batch[0].resolve(out);
      return;
    }
    let offset = 0;
    for (const j of batch) {
      const mine: Record<string, TensorData> = {};
      for (const [name, t] of Object.entries(out)) {
        const w = rowSize(t);
        if (t.dims[0] !== rows) {
          j.reject(new Error(`output "${name}" has ${t.dims[0]} rows for a batch of ${rows}`));
          continue;
        }
        mine[name] = {
          data: t.data.slice(offset * w, (offset + j.rows) * w),
          dims: [j.rows, ...t.dims.slice(1)],
        };
      }
      j.resolve(mine);
      offset += j.rows;
    }
  }
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
