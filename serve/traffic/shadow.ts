/**
 * Shadow traffic: after the primary answered, a copy of the request's images goes on a bounded
 * queue, and the shadow version (its own slot, loaded and checked like any swap) runs them
 * later and compares: same top label or not, and the L2 distance between the two latent means.
 * Nothing here is awaited on a request's path: offer() only copies and enqueues (or drops and
 * counts when the queue is full), and the pump starts each job on a later macrotask, so a
 * response is on its way before any shadow work starts. Failures are counted, never surfaced.
 */
import { argmax } from "../../common/argmax.ts";
import { PIXELS } from "../../common/labels.ts";
import type { EncodeOutput, LoadedModel } from "../inference/model.ts";
import type { ModelSlot } from "../inference/slot.ts";
import type { TrafficMetrics } from "./metrics.ts";

export interface ShadowJob {
  images: Float32Array;
  count: number;
  /** The primary's answer and who gave it. */
  primary: { version: string; labels: readonly string[]; latentSize: number };
  out: EncodeOutput;
}

export interface ShadowStats {
  compared: number;
  agreed: number;
  agreement: number | null;
  meanLatentDistance: number | null;
  dropped: number;
  failures: number;
  queued: number;
}

/** Most rows in one shadow run. */
const MAX_ROWS = 64;

const later = () => new Promise<void>((r) => setTimeout(r, 0));

export class ShadowRunner {
  #queue: ShadowJob[] = [];
  #inflight = 0;
  #idle: (() => void)[] = [];
  #s = { compared: 0, agreed: 0, distSum: 0, distN: 0, dropped: 0, failures: 0 };

  /**
   * `capacity` jobs wait at most; `concurrency` run at once (the shadow's batcher coalesces
   * them), which bounds the share of the cores the shadow can take from the primary.
   */
  constructor(
    readonly slot: ModelSlot,
    readonly metrics: TrafficMetrics,
    readonly capacity = 256,
    readonly concurrency = 1,
  ) {}

  /** Whether a shadow model is loaded (callers skip copying images otherwise). */
  get active(): boolean {
    return this.slot.current !== null;
  }

  /** Whether a job offered now would be queued rather than dropped. */
  get hasRoom(): boolean {
    return this.#queue.length < this.capacity;
  }

  /** Counts a request not copied to the shadow (the queue was full). */
  drop(): void {
    this.#s.dropped++;
    this.metrics.shadowDropped.inc({ shadow: this.slot.current?.version ?? "none" });
  }

  /** Queues a comparison; false (and counted) when the queue is full. */
  offer(job: ShadowJob): boolean {
    if (!this.hasRoom) {
      this.drop();
      return false;
    }
    this.#queue.push(job);
    this.metrics.shadowQueue.set({}, this.#queue.length);
    if (this.#inflight < this.concurrency) void this.#pump();
    return true;
  }

  async #pump(): Promise<void> {
    this.#inflight++;
    try {
      await later();
      while (this.#queue.length) {
        // Queued jobs run as one batch: one shadow run per drain instead of one per request.
        const jobs = [this.#queue.shift()!];
        let rows = jobs[0].count;
        while (this.#queue.length && rows + this.#queue[0].count <= MAX_ROWS) {
          rows += this.#queue[0].count;
          jobs.push(this.#queue.shift()!);
        }
        this.metrics.shadowQueue.set({}, this.#queue.length);
        await this.#run(jobs, rows);
        await later(); // let requests that arrived meanwhile go first
      }
    } finally {
      this.#inflight--;
      if (this.#inflight === 0) this.#idle.splice(0).forEach((r) => r());
    }
  }

  async #run(jobs: ShadowJob[], rows: number): Promise<void> {
    const t0 = performance.now();
    const images = new Float32Array(rows * PIXELS);
    let at = 0;
    for (const j of jobs) {
      images.set(j.images, at * PIXELS);
      at += j.count;
    }
    try {
      await this.slot.use(async (m) => {
        const out = await m.encode(images, rows);
        this.metrics.shadowLatency.observe((performance.now() - t0) / 1000, { shadow: m.version });
        const K = m.labels.length, L = m.latentSize;
        let row = 0;
        for (const j of jobs) {
          this.#compare(j, m, {
            count: j.count,
            probabilities: out.probabilities.subarray(row * K, (row + j.count) * K),
            mu: out.mu.subarray(row * L, (row + j.count) * L),
            logvar: out.logvar.subarray(row * L, (row + j.count) * L),
          });
          row += j.count;
        }
      });
    } catch {
      this.#s.failures++;
      this.metrics.shadowFailures.inc({});
    }
  }

  #compare(job: ShadowJob, m: LoadedModel, out: EncodeOutput): void {
    const Kp = job.primary.labels.length, Ks = m.labels.length;
    const L = m.latentSize, sameSpace = L === job.primary.latentSize;
    const labels = { primary: job.primary.version, shadow: m.version };
    let agreed = 0;
    for (let i = 0; i < job.count; i++) {
      const p = job.primary.labels[argmax(job.out.probabilities, i * Kp, Kp)];
      const s = m.labels[argmax(out.probabilities, i * Ks, Ks)];
      this.metrics.predictions.inc({ version: m.version, role: "shadow", label: s });
      if (p === s) agreed++;
      if (sameSpace) {
        let d = 0;
        for (let j = i * L; j < (i + 1) * L; j++) d += (job.out.mu[j] - out.mu[j]) ** 2;
        this.#s.distSum += Math.sqrt(d);
        this.#s.distN++;
      }
    }
    this.#s.compared += job.count;
    this.#s.agreed += agreed;
    this.metrics.shadowCompared.inc(labels, job.count);
    this.metrics.shadowAgreed.inc(labels, agreed);
    this.metrics.shadowAgreement.set(labels, this.#s.agreed / this.#s.compared);
    if (this.#s.distN) this.metrics.shadowDistance.set(labels, this.#s.distSum / this.#s.distN);
  }

  /** Resolves once the queue is empty and no job runs (tests and the benchmark wait on it). */
  idle(): Promise<void> {
    if (this.#inflight === 0 && this.#queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** Starts the comparison over (a new shadow version). */
  reset(): void {
    this.#s = { compared: 0, agreed: 0, distSum: 0, distN: 0, dropped: 0, failures: 0 };
    for (const c of [this.metrics.shadowAgreement, this.metrics.shadowDistance]) c.reset();
  }

  stats(): ShadowStats {
    const s = this.#s;
    return {
      compared: s.compared,
      agreed: s.agreed,
      agreement: s.compared ? s.agreed / s.compared : null,
      meanLatentDistance: s.distN ? s.distSum / s.distN : null,
      dropped: s.dropped,
      failures: s.failures,
      queued: this.#queue.length,
    };
  }
}
