/**
 * A loaded, validated model bundle: its manifest plus an encoder (and optional decoder) session,
 * each behind a BatchRunner. loadModel() refuses a bundle unless the manifest validates, every
 * file matches its sha256, the sessions expose the manifest's tensors, and the manifest's probe
 * images reproduce their recorded outputs on this runtime. A LoadedModel counts the requests
 * using it, so a newer model can replace it (see slot.ts) while those requests finish on it;
 * close() waits for them before releasing the sessions. Inputs and outputs are plain typed
 * arrays, so the same class could front sessions living in a Worker.
 */
import {
  type BundleFiles,
  checkGraphs,
  choosePrecision,
  filesInMemory,
  filesOnDisk,
  type Manifest,
  type MemoryBundle,
  openGraphs,
  type Precision,
  type PrecisionChoice,
  readManifest,
  servedRoles,
  verifyBundleBytes,
  verifyBundleFiles,
} from "../../bundle/mod.ts";
import { IMAGE_SIZE, PIXELS } from "../../common/labels.ts";
import type { Backend, BackendName, Session } from "./backend.ts";
import { BatchRunner, type BatchStats } from "./runner.ts";

export interface EncodeOutput {
  count: number;
  /** count x K, row-major. */
  probabilities: Float32Array;
  /** count x L. */
  mu: Float32Array;
  /** count x L. */
  logvar: Float32Array;
}

export interface LoadOptions {
  backend: Backend;
  /** Largest batch per session run (requests are coalesced up to it). */
  maxBatch: number;
  /** With a run in flight, longest a request waits for a fuller batch, ms (runner.ts). */
  maxQueueDelayMs?: number;
  /** Requests above this many rows run in chunks interleaved with small ones (runner.ts). */
  chunkRows?: number;
  /** Serving graph: "auto" (default) takes the bundle's int8 graph when it has one. */
  precision?: PrecisionChoice;
  /** Observes every session run at dispatch: which graph, how many rows, jobs and waits. */
  onBatch?: (graph: "model" | "decoder", rows: number, stats: BatchStats) => void;
  /** Observes every completed session run: which graph, its wall time (s) and rows. */
  onRun?: (graph: "model" | "decoder", seconds: number, rows: number, compute: number) => void;
}

export interface ProbeSummary {
  cases: number;
  maxAbsDiff: number;
}

export class LoadedModel {
  readonly name: string;
  readonly version: string;
  readonly labels: readonly string[];
  readonly latentSize: number;
  /** Which serving graph runs (set by loadModel). */
  precision: Precision = "fp32";
  #inflight = 0;
  #closing: Promise<void> | null = null;
  #idle: (() => void) | null = null;

  constructor(
    readonly manifest: Manifest,
    readonly dir: string,
    readonly backend: BackendName,
    private readonly encoder: BatchRunner,
    private readonly decoder: BatchRunner | null,
    readonly maxBatch: number,
    public probe: ProbeSummary | null = null,
    /** Frees what outlives the sessions (the model's worker, see worker.ts). */
    private readonly dispose: (() => Promise<void>) | null = null,
  ) {
    this.name = manifest.name;
    this.version = manifest.version;
    this.labels = manifest.labels;
    this.latentSize = manifest.latentSize;
  }

  get hasDecoder(): boolean {
    return this.decoder !== null;
  }

  /** Requests currently pinning this model. */
  get inflight(): number {
    return this.#inflight;
  }

  /**
   * Pins the model for one request; call the returned function when done. A closing model
   * refuses new pins, so a request never starts on a model that is being released.
   */
  acquire(): () => void {
    if (this.#closing) throw new Error(`model ${this.name}@${this.version} is being unloaded`);
    this.#inflight++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.#inflight === 0 && this.#idle) this.#idle();
    };
  }

  /** Encodes `count` images (count x 784 floats in [0, 1], light on dark). Any count. */
  async encode(images: Float32Array, count: number): Promise<EncodeOutput> {
    if (images.length !== count * PIXELS) {
      throw new Error(`encode(): ${images.length} floats for ${count} images of ${PIXELS}`);
    }
    const K = this.labels.length, L = this.latentSize;
    const o = this.manifest.outputs;
    const out: EncodeOutput = {
      count,
      probabilities: new Float32Array(count * K),
      mu: new Float32Array(count * L),
      logvar: new Float32Array(count * L),
    };
    const jobs: Promise<void>[] = [];
    for (let start = 0; start < count; start += this.maxBatch) {
      const n = Math.min(this.maxBatch, count - start);
      jobs.push(
        this.encoder.run({
          [this.manifest.input.name]: {
            data: images.subarray(start * PIXELS, (start + n) * PIXELS),
            dims: [n, 1, IMAGE_SIZE, IMAGE_SIZE],
          },
        })
          .then((r) => {
            const take = (name: string, width: number, into: Float32Array) => {
              const t = r[name];
              if (!t || t.data.length !== n * width) {
                throw new Error(
                  `model output "${name}" holds ${
                    t?.data.length ?? 0
                  } values for ${n} images, expected ${n * width}`,
                );
              }
              into.set(t.data, start * width);
            };
            take(o.probabilities.name, K, out.probabilities);
            take(o.mu.name, L, out.mu);
            take(o.logvar.name, L, out.logvar);
          }),
      );
    }
    await Promise.all(jobs);
    return out;
  }

  /** Decodes `count` latent vectors (count x L) to count x 784 pixels in [0, 1]. */
  async decode(z: Float32Array, count: number): Promise<Float32Array> {
    if (!this.decoder || !this.manifest.decoder) {
      throw new Error(`model ${this.name}@${this.version} has no decoder`);
    }
    const L = this.latentSize;
    if (z.length !== count * L) {
      throw new Error(`decode(): ${z.length} floats for ${count} vectors of ${L}`);
    }
    const spec = this.manifest.decoder;
    const out = new Float32Array(count * PIXELS);
    const jobs: Promise<void>[] = [];
    for (let start = 0; start < count; start += this.maxBatch) {
      const n = Math.min(this.maxBatch, count - start);
      jobs.push(
        this.decoder.run({
          [spec.input.name]: { data: z.subarray(start * L, (start + n) * L), dims: [n, L] },
        }).then((r) => {
          const t = r[spec.output.name];
          if (!t || t.data.length !== n * PIXELS) {
            throw new Error(
              `decoder output "${spec.output.name}" holds ${
                t?.data.length ?? 0
              } values for ${n} vectors, expected ${n * PIXELS}`,
            );
          }
          out.set(t.data, start * PIXELS);
        }),
      );
    }
    await Promise.all(jobs);
    return out;
  }

  /** Refuses new requests, waits for the in-flight ones, then releases the sessions. Idempotent. */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = (async () => {
        if (this.#inflight > 0) await new Promise<void>((r) => (this.#idle = r));
        this.encoder.close();
        this.decoder?.close();
        try {
          await this.encoder.session.release();
          await this.decoder?.session.release();
        } finally {
          await this.dispose?.();
        }
      })();
    }
    return this.#closing;
  }
}

/**
 * Loads and validates the bundle in `dir` on `backend`. Throws BundleError naming the file or
 * field at fault; on failure every session created so far is released.
 */
export async function loadModel(dir: string, opts: LoadOptions): Promise<LoadedModel> {
  const manifest = await readManifest(dir);
  // Only what this server reads: a remote source downloads no more (bundle/served.ts).
  await verifyBundleFiles(dir, manifest, servedRoles(manifest, opts.precision ?? "auto"));
  return await loadVerified(dir, manifest, filesOnDisk(dir, manifest), opts);
}

/**
 * loadModel for a bundle downloaded into memory (the edge profile: no file system): the same
 * checks (sha256, session IO, probe), with the bundle's label (its URL) in errors.
 */
export async function loadModelFromMemory(
  bundle: MemoryBundle,
  opts: LoadOptions,
): Promise<LoadedModel> {
  verifyBundleBytes(bundle, servedRoles(bundle.manifest, opts.precision ?? "auto"));
  return await loadVerified(bundle.label, bundle.manifest, filesInMemory(bundle), opts);
}

async function loadVerified(
  dir: string,
  manifest: Manifest,
  files: BundleFiles,
  opts: LoadOptions,
): Promise<LoadedModel> {
  const precision = choosePrecision(manifest, opts.precision ?? "auto", dir);
  // A backend that isolates models (worker.ts) gives this model a runtime of its own.
  const iso = opts.backend.isolate ? await opts.backend.isolate() : null;
  const backend = iso ?? opts.backend;
  let graphs: { model: Session; decoder: Session | null };
  try {
    graphs = await openGraphs(dir, manifest, {
      name: `${backend.name} onnxruntime`,
      open: (bytes) => backend.createSession(bytes),
    }, { files, precision });
  } catch (e) {
    await iso?.dispose();
    throw e;
  }
  const runner = (s: Session, graph: "model" | "decoder") =>
    new BatchRunner(s, {
      maxBatch: opts.maxBatch,
      maxQueueDelayMs: opts.maxQueueDelayMs,
      chunkRows: opts.chunkRows,
      onBatch: opts.onBatch ? (rows, stats) => opts.onBatch!(graph, rows, stats) : undefined,
      onRun: opts.onRun
        ? (sec, rows, compute) => opts.onRun!(graph, sec, rows, compute)
        : undefined,
    });
  const model = new LoadedModel(
    manifest,
    dir,
    opts.backend.name,
    runner(graphs.model, "model"),
    graphs.decoder ? runner(graphs.decoder, "decoder") : null,
    opts.maxBatch,
    null,
    iso ? () => iso.dispose() : null,
  );
  model.precision = precision;
  try {
    // The acceptance check runs through the batch runners: the path requests will take.
    model.probe = await checkGraphs(
      dir,
      manifest,
      (images, n) => model.encode(images, n),
      model.hasDecoder ? (z, n) => model.decode(z, n) : null,
      precision,
    );
  } catch (e) {
    await model.close();
    throw e;
  }
  return model;
}
