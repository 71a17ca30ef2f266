/**
 * A Backend whose sessions live in Deno Workers: each loaded model gets a pool of `workers`
 * workers, each holding its own copy of the model's sessions. onnxruntime-web keeps one
 * WebAssembly heap per runtime instance and that heap only grows: releasing a session returns
 * its memory to the wasm allocator, never to the OS. So a service that swaps models would grow
 * by every model it ever loaded; giving each model its own workers and terminating them when
 * the model retires returns all of it. loadModel() calls isolate() for a private backend per
 * model and dispose() after releasing its sessions. The pool also takes inference off the
 * main thread: HTTP handling and image decoding there never wait for a run, and with several
 * workers several batches run in parallel (one running per worker, and by default one more
 * waiting in it, see pooled()).
 *
 * A worker pays for loading and instantiating the runtime before its first session (see
 * docs/performance.md), so the backend keeps one initialised standby pool: isolate() hands it
 * out at once and starts the next standby pool in the background, which keeps that cost out of
 * the publish-to-serving time.
 * The interface stays the plain-typed-array Session of backend.ts.
 */
import type { SessionValueMetadata } from "../../bundle/mod.ts";
import {
  type Backend,
  type BackendName,
  computeSeconds,
  type IsolatedBackend,
  runtimeSetup,
  type Session,
  type TensorData,
} from "./backend.ts";

/** The worker's protocol (see _session_worker.js). */
type Body =
  | { op: "init"; ortUrl: string; setup: ReturnType<typeof runtimeSetup> }
  | { op: "create"; model: Uint8Array }
  | { op: "run"; session: number; feeds: Record<string, TensorData> }
  | { op: "release"; session: number };
type WorkerReply = { id: number; ok: true; result: unknown } | {
  id: number;
  ok: false;
  error: string;
};
type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };

/** One worker and its request/reply bookkeeping. */
class SessionWorker {
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #nextId = 1;
  #dead: Error | null = null;
  readonly ready: Promise<void>;

  constructor(backend: BackendName, threads: number) {
    this.#worker = new Worker(new URL("./_session_worker.js", import.meta.url), {
      type: "module",
    });
    this.#worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const p = this.#pending.get(e.data.id);
      if (!p) return;
      this.#pending.delete(e.data.id);
      if (e.data.ok) p.resolve(e.data.result);
      else p.reject(new Error(e.data.error));
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault(); // a crashed model worker must not take the server down
      this.#fail(new Error(`the ${backend} session worker crashed: ${e.message}`));
    };
    const setup = runtimeSetup(backend, threads);
    // Resolved here, where the import map and node_modules apply, and loaded by URL there.
    const ortUrl = import.meta.resolve(setup.module);
    this.ready = this.call({ op: "init", ortUrl, setup }).then(() => {});
    this.ready.catch(() => {}); // observed by whoever awaits it; no unhandled rejection meanwhile
  }

  #fail(err: Error): void {
    this.#dead ??= err;
    for (const p of this.#pending.values()) p.reject(this.#dead);
    this.#pending.clear();
  }

  call(body: Body, transfer: Transferable[] = []): Promise<unknown> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...body, id }, transfer);
    });
  }

  terminate(): void {
    this.#fail(new Error("the session worker was terminated (its model was retired)"));
    // Terminating a worker while it is still loading its runtime crashed the process with the
    // native addon (bad_alloc at exit), so let the start-up finish first (an exiting process
    // waits for it too); the cap keeps a hung start-up from pinning the worker forever.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cap = new Promise<void>((r) => (timer = setTimeout(r, 10_000)));
    Promise.race([this.ready.catch(() => {}), cap]).then(() => {
      clearTimeout(timer);
      this.#worker.terminate();
    });
  }
}

interface CreateReply {
  session: number;
  inputNames: string[];
  outputNames: string[];
  inputMetadata?: SessionValueMetadata[];
  outputMetadata?: SessionValueMetadata[];
}

function sessionOn(w: SessionWorker, r: CreateReply): Session {
  return {
    inputNames: r.inputNames,
    outputNames: r.outputNames,
    inputMetadata: r.inputMetadata,
    outputMetadata: r.outputMetadata,
    async run(feeds) {
      // Inputs are copied, not transferred: they are often views into a caller's buffer.
      const { outputs, seconds } = await w.call({ op: "run", session: r.session, feeds }) as {
        outputs: Record<string, TensorData>;
        seconds: number;
      };
      computeSeconds.set(outputs, seconds);
      return outputs;
    },
    async release() {
      await w.call({ op: "release", session: r.session }).catch(() => {});
    },
  };
}

/**
 * One Session over a copy per worker: up to `depth` runs in flight per worker, each sent to the
 * least busy copy. A worker runs its requests one at a time; with depth 2 the next batch already
 * waits in the worker when the current run ends, so the worker never idles for a round trip to
 * this thread (what that costs under load: docs/performance.md).
 */
function pooled(copies: Session[], depth: number): Session {
  const busy = copies.map(() => 0);
  const first = copies[0];
  return {
    concurrency: copies.length * depth,
    inputNames: first.inputNames,
    outputNames: first.outputNames,
    inputMetadata: first.inputMetadata,
    outputMetadata: first.outputMetadata,
    async run(feeds) {
      let i = 0;
      for (let k = 1; k < busy.length; k++) if (busy[k] < busy[i]) i = k;
      busy[i]++;
      try {
        return await copies[i].run(feeds);
      } finally {
        busy[i]--;
      }
    },
    async release() {
      await Promise.all(copies.map((c) => c.release()));
    },
  };
}

function isolatedOn(pool: SessionWorker[], name: BackendName, depth: number): IsolatedBackend {
  return {
    name,
    async createSession(model: Uint8Array): Promise<Session> {
      const made = await Promise.allSettled(
        pool.map(async (w) => sessionOn(w, await w.call({ op: "create", model }) as CreateReply)),
      );
      const failed = made.find((m) => m.status === "rejected") as PromiseRejectedResult | undefined;
      if (failed) {
        for (const m of made) if (m.status === "fulfilled") await m.value.release();
        throw failed.reason;
      }
      return pooled(made.map((m) => (m as PromiseFulfilledResult<Session>).value), depth);
    },
    dispose() {
      for (const w of pool) w.terminate();
      return Promise.resolve();
    },
  };
}

export interface WorkerBackendOptions {
  threads: number;
  /** Workers per loaded model (default 1). */
  workers?: number;
  /** Runs in flight per worker (default 2: one running, the next waiting in the worker). */
  depth?: number;
  /** Keep one initialised pool ready for the next model (default true). */
  standby?: boolean;
}

/** A Backend that gives every model a fresh pool of workers running the `name` runtime. */
export class WorkerBackend implements Backend {
  #standby: SessionWorker[] | null = null;
  #closed = false;

  constructor(readonly name: BackendName, readonly opts: WorkerBackendOptions) {}

  get workers(): number {
    return Math.max(1, this.opts.workers ?? 1);
  }

  get depth(): number {
    return Math.max(1, this.opts.depth ?? 2);
  }

  /** Starts the runtime in a pool of workers and checks it works; call once before serving. */
  async start(): Promise<void> {
    const pool = this.#spawn();
    try {
      await Promise.all(pool.map((w) => w.ready));
    } catch (e) {
      for (const w of pool) w.terminate();
      this.#standby = null;
      throw e;
    }
  }

  #newPool(): SessionWorker[] {
    return Array.from(
      { length: this.workers },
      () => new SessionWorker(this.name, this.opts.threads),
    );
  }

  #spawn(): SessionWorker[] {
    const pool = this.#newPool();
    this.#standby = pool;
    return pool;
  }

  async isolate(): Promise<IsolatedBackend> {
    if (this.#closed) throw new Error("the worker backend was closed");
    const pool = this.#standby ?? this.#newPool();
    this.#standby = null;
    try {
      await Promise.all(pool.map((w) => w.ready));
    } catch (e) {
      for (const w of pool) w.terminate();
      throw new Error(`cannot start a ${this.name} session worker: ${(e as Error).message}`);
    }
    if (this.opts.standby !== false && !this.#closed) this.#spawn();
    return isolatedOn(pool, this.name, this.depth);
  }

  /** A session created directly (not through isolate()) gets a pool of its own. */
  async createSession(model: Uint8Array): Promise<Session> {
    const iso = await this.isolate();
    let s: Session;
    try {
      s = await iso.createSession(model);
    } catch (e) {
      await iso.dispose();
      throw e;
    }
    return { ...s, run: (f) => s.run(f), release: () => s.release().then(() => iso.dispose()) };
  }

  /** Resolves once the standby pool (if any) has its runtime initialised. */
  async standbyReady(): Promise<void> {
    await Promise.all((this.#standby ?? []).map((w) => w.ready.catch(() => {})));
  }

  /** Terminates the standby pool (models' workers go with their models). */
  close(): void {
    this.#closed = true;
    for (const w of this.#standby ?? []) w.terminate();
    this.#standby = null;
  }
}
