/**
 * Decoding of large images off the HTTP thread. A 25-megapixel PNG takes seconds of CPU to
 * inflate and convert; decoded on the thread that answers HTTP it would hold every other
 * request for that long. So images whose decoded size is above `inlineBytes` go, one at a
 * time per worker and in arrival order, to Deno Workers (serve/decode_worker.ts): the HTTP
 * thread keeps answering small requests, and the memory in use for decoding is bounded by
 * workers x the per-image limit. Small images (the 28x28 ones most requests carry) decode
 * inline, where a worker round trip would cost more than the decode. Workers start on demand
 * (100-400 ms on a busy 2-core machine) and stop after `idleMs` without work, so a burst of
 * large images pays the start once and an idle service holds none; close() stops them now.
 */
import type { DecodeOptions } from "../common/image_codec.ts";
import { ImageCodecError } from "../common/image_codec.ts";
import { PreprocessError, type PreprocessMode } from "../common/preprocess.ts";
import type { DecodeJob } from "./decode_worker.ts";

export interface DecodePoolOptions {
  /** Workers decoding at once (default 1: the other core keeps serving). */
  workers?: number;
  /** Idle workers are stopped after this long without work, ms (default 5000). */
  idleMs?: number;
}

interface Pending {
  job: DecodeJob;
  resolve: (x: Float32Array) => void;
  reject: (e: Error) => void;
}

type Reply = {
  id: number;
  x?: Float32Array;
  error?: { name: string; kind?: string; message: string };
};

/** Rebuilds the worker's error as the class the inline path would have thrown. */
function rebuild(e: NonNullable<Reply["error"]>): Error {
  if (e.name === "ImageCodecError") {
    return new ImageCodecError(e.kind as ImageCodecError["kind"], e.message);
  }
  if (e.name === "PreprocessError") return new PreprocessError(e.message);
  return new Error(e.message);
}

export class DecodePool {
  readonly workers: number;
  readonly idleMs: number;
  #idleTimer: ReturnType<typeof setTimeout> | null = null;
  #queue: Pending[] = [];
  #idle: Worker[] = [];
  #busy = new Map<Worker, Pending>();
  #next = 1;
  #closed = false;

  constructor(opts: DecodePoolOptions = {}) {
    this.workers = Math.max(1, opts.workers ?? 1);
    this.idleMs = Math.max(0, opts.idleMs ?? 5000);
  }

  /** Stops every worker now; jobs still queued or decoding are refused. */
  close(): void {
    this.#closed = true;
    this.#clearIdle();
    for (const w of this.#idle.splice(0)) w.terminate();
    for (const [w, p] of this.#busy) {
      w.terminate();
      p.reject(new Error("the decode pool was closed"));
    }
    this.#busy.clear();
    for (const p of this.#queue.splice(0)) p.reject(new Error("the decode pool was closed"));
  }

  #clearIdle(): void {
    if (this.#idleTimer !== null) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  /** Jobs queued or decoding. */
  get pending(): number {
    return this.#queue.length + this.#busy.size;
  }

  decode(bytes: Uint8Array, opts: DecodeOptions, mode: PreprocessMode): Promise<Float32Array> {
    if (this.#closed) return Promise.reject(new Error("the decode pool was closed"));
    return new Promise((resolve, reject) => {
      // A copy of the (compressed) bytes is transferred: the caller's may share a buffer.
      const own = bytes.slice();
      this.#queue.push({ job: { id: this.#next++, bytes: own, opts, mode }, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    this.#clearIdle();
    while (this.#queue.length > 0 && this.#busy.size < this.workers) {
      const p = this.#queue.shift()!;
      const w = this.#idle.pop() ?? this.#spawn();
      this.#busy.set(w, p);
      w.postMessage(p.job, [p.job.bytes.buffer as ArrayBuffer]);
    }
    // Nothing left to do: stop the idle workers (a V8 isolate each) unless work comes soon.
    if (this.#queue.length === 0 && this.#busy.size === 0 && this.#idle.length > 0) {
      this.#idleTimer = setTimeout(() => {
        this.#idleTimer = null;
        for (const w of this.#idle.splice(0)) w.terminate();
      }, this.idleMs);
    }
  }

  #spawn(): Worker {
    const w = new Worker(new URL("./decode_worker.ts", import.meta.url).href, { type: "module" });
    w.onmessage = (e: MessageEvent<Reply>) => this.#done(w, e.data);
    w.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#done(w, {
        id: -1,
        error: { name: "Error", message: `decode worker failed: ${e.message}` },
      });
      w.terminate();
    };
    return w;
  }

  #done(w: Worker, r: Reply): void {
    const p = this.#busy.get(w);
    if (!p) return;
    this.#busy.delete(w);
    if (r.error) p.reject(rebuild(r.error));
    else p.resolve(r.x!);
    if (r.id !== -1) this.#idle.push(w);
    this.#pump();
  }
}
