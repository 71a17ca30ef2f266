/**
 * Data-parallel training steps on several cores: the batch is split into equal shares, each
 * lane (this thread plus one worker thread per extra lane, _lane_worker.ts) computes the loss
 * parts and the gradient of its share in its own onnxruntime session with one intra-op thread,
 * and the gradients are averaged (each lane's graph divides by its share, so the mean over
 * lanes is the full batch's gradient) before one Adam update (OrtTrainer.applyAdam) here.
 * The result equals an OrtTrainer step on the whole batch up to float32 summation order.
 *
 * It offers the part of OrtTrainer that trainVae uses (step, state, writeTo, dispose), so
 * `lanes: 1` and `lanes: 2` are interchangeable; checkpoints are the same.
 */
import { Worker } from "node:worker_threads";
import type { HeadConfig, VaeConfig } from "../model.ts";
import type { LaneInit, LaneRequest } from "./_lane_worker.ts";
import {
  type AdamState,
  type OrtModelGroups,
  type OrtModels,
  OrtTrainer,
  type OrtTrainerOptions,
  type StepResult,
} from "./ort_train.ts";

const WORKER = new URL("./_lane_worker.ts", import.meta.url);

/**
 * The worker's entry: a worker thread does not inherit the parent's tsx loader, so it
 * registers tsx before importing the TypeScript lane.
 */
function bootstrap(): string {
  const tsx = import.meta.resolve("tsx/esm/api");
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${
    JSON.stringify(WORKER.href)
  }); });`;
}
const PIXELS = 784;

/** What trainVae needs of a training engine: OrtTrainer and OrtLanes both are one. */
export type OrtEngine =
  & Pick<
    OrtTrainer,
    "step" | "getOptimizerState" | "setOptimizerState" | "writeTo" | "dispose" | "learningRate"
  >
  & { readonly opts: OrtTrainerOptions };

interface LaneReply {
  ready?: boolean;
  error?: string;
  parts?: StepResult;
  grads?: Float32Array;
}

/** A worker lane: one request at a time, answered in order. */
class RemoteLane {
  private waiting: ((r: LaneReply) => void)[] = [];
  private constructor(private readonly worker: Worker) {
    worker.on("message", (r: LaneReply) => this.waiting.shift()?.(r));
    worker.on(
      "error",
      (e: Error) => this.waiting.splice(0).forEach((w) => w({ error: e.message })),
    );
  }

  static async start(init: LaneInit): Promise<RemoteLane> {
    const lane = new RemoteLane(new Worker(bootstrap(), { eval: true, workerData: init }));
    const r = await lane.next();
    if (r.error) {
      await lane.worker.terminate();
      throw new Error(r.error);
    }
    return lane;
  }

  private next(): Promise<LaneReply> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async run(req: LaneRequest): Promise<{ parts: StepResult; grads: Float32Array }> {
    const reply = this.next();
    this.worker.postMessage(req);
    const r = await reply;
    if (r.error || !r.parts || !r.grads) throw new Error(`training lane: ${r.error ?? "no reply"}`);
    return { parts: r.parts, grads: r.grads };
  }

  async close(): Promise<void> {
    this.worker.postMessage("close");
    await this.worker.terminate();
  }
}

export class OrtLanes implements OrtEngine {
  private constructor(
    private readonly own: OrtTrainer,
    private readonly remote: RemoteLane[],
    readonly opts: OrtTrainerOptions,
  ) {}

  /**
   * `lanes` shares of `opts.batchSize` images each step (it must divide the batch). The models
   * give the architecture and the starting weights, as for OrtTrainer.create.
   */
  static async create(
    models: OrtModels,
    arch: { vae: VaeConfig; head: HeadConfig | null },
    opts: OrtTrainerOptions,
    lanes: number,
  ): Promise<OrtLanes> {
    if (!Number.isInteger(lanes) || lanes < 1 || opts.batchSize % lanes !== 0) {
      throw new Error(`ort lanes: ${lanes} lanes must divide the batch of ${opts.batchSize}`);
    }
    const share = { ...opts, batchSize: opts.batchSize / lanes, threads: 1, adam: "js" as const };
    const own = await OrtTrainer.create(models, share);
    const remote: RemoteLane[] = [];
    try {
      for (let i = 1; i < lanes; i++) remote.push(await RemoteLane.start({ ...arch, opts: share }));
    } catch (e) {
      await Promise.all(remote.map((r) => r.close()));
      await own.dispose();
      throw e;
    }
    return new OrtLanes(own, remote, opts);
  }

  /** Adam's step size (a schedule changes it between steps); the lanes only send gradients. */
  get learningRate(): number {
    return this.own.learningRate;
  }

  set learningRate(lr: number) {
    this.own.learningRate = lr;
  }

  get lanes(): number {
    return this.remote.length + 1;
  }

  /** One step on the whole batch: x [B,28,28,1], eps [B,L], labels [B] class ids. */
  async step(
    x: ArrayLike<number>,
    eps: ArrayLike<number>,
    labels?: ArrayLike<number>,
  ): Promise<StepResult> {
    const n = this.lanes, b = this.opts.batchSize / n, L = this.opts.latent;
    const cut = (a: ArrayLike<number>, i: number, w: number) =>
      Float32Array.prototype.slice.call(a, i * b * w, (i + 1) * b * w) as Float32Array;
    const params = this.own.paramsFlat;
    // The workers start first; this thread's share then runs while they compute theirs.
    const jobs = this.remote.map((lane, k) =>
      lane.run({
        params,
        x: cut(x, k + 1, PIXELS),
        eps: cut(eps, k + 1, L),
        labels: labels ? cut(labels, k + 1, 1) : undefined,
      })
    );
    const mine = await this.own.forwardBackward(
      cut(x, 0, PIXELS),
      cut(eps, 0, L),
      labels ? cut(labels, 0, 1) : undefined,
    );
    const rest = await Promise.all(jobs);
    const g = Float32Array.from(mine.grads);
    for (const r of rest) for (let j = 0; j < g.length; j++) g[j] += r.grads[j];
    const inv = Math.fround(1 / n);
    for (let j = 0; j < g.length; j++) g[j] *= inv;
    this.own.applyAdam(g);
    const all = [mine.parts, ...rest.map((r) => r.parts)];
    const mean = (k: keyof StepResult) => all.reduce((a, p) => a + p[k], 0) / n;
    return {
      loss: mean("loss"),
      rec: mean("rec"),
      kl: mean("kl"),
      ce: mean("ce"),
      correct: all.reduce((a, p) => a + p.correct, 0),
    };
  }

  getOptimizerState(): AdamState {
    return this.own.getOptimizerState();
  }

  setOptimizerState(s: AdamState): void {
    this.own.setOptimizerState(s);
  }

  writeTo(models: OrtModelGroups): void {
    this.own.writeTo(models);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.remote.map((r) => r.close()));
    await this.own.dispose();
  }
}
