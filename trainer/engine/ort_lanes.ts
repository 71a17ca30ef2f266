/**
 * Data-parallel training steps on several cores: the batch is split into equal shares, each
 * lane (this thread plus one worker thread per extra lane, _lane_worker.ts) computes the loss
 * parts and the gradient of its share in its own onnxruntime session with one intra-op thread,
 * and the gradients are averaged (each lane's graph divides by its share, so the mean over
 * lanes is the full batch's gradient) in one Adam update. The parameters, Adam's slots and the
 * lanes' gradients live in SharedArrayBuffers, so nothing is cloned between threads, and each
 * lane averages and updates its own range of the parameters (`splitAdam`, the default; off,
 * this thread updates all of them): Adam is elementwise, so the result is the same either way.
 * It equals an OrtTrainer step on the whole batch up to float32 summation order.
 *
 * It offers the part of OrtTrainer that trainVae uses (step, state, writeTo, dispose), so
 * `lanes: 1` and `lanes: 2` are interchangeable; checkpoints are the same.
 */
import { Worker } from "node:worker_threads";
import type { HeadConfig, VaeConfig } from "../model.ts";
import type { LaneInit, LaneRequest, LaneShared } from "./_lane_worker.ts";
import { adamOf, type AdamStep, adamUpdateMean } from "./ort_adam.ts";
import { onnxToTfjs, type OrtModelGroups, tfjsToOnnx } from "./ort_layout.ts";
import {
  type AdamState,
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
const f = Math.fround;

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
  done?: boolean;
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

  async run(req: LaneRequest): Promise<LaneReply> {
    const reply = this.next();
    this.worker.postMessage(req);
    const r = await reply;
    if (r.error || !(r.parts || r.done)) {
      throw new Error(`training lane: ${r.error ?? "no reply"}`);
    }
    return r;
  }

  async close(): Promise<void> {
    this.worker.postMessage("close");
    await this.worker.terminate();
  }
}

/** [from, to) of each of `n` equal contiguous ranges of `size` elements. */
function ranges(size: number, n: number): [number, number][] {
  return Array.from({ length: n }, (_, k) => [
    Math.floor((k * size) / n),
    Math.floor(((k + 1) * size) / n),
  ]);
}

export interface OrtLanesOptions {
  /** Each lane averages and updates its own range of the parameters (default true). */
  splitAdam?: boolean;
}

export class OrtLanes implements OrtEngine {
  learningRate: number;
  private iterations = 0;
  private accBeta1: number;
  private accBeta2: number;
  private readonly adam: { beta1: number; beta2: number; epsilon: number };
  private readonly ranges: [number, number][];

  private constructor(
    private readonly own: OrtTrainer,
    private readonly remote: RemoteLane[],
    private readonly shared: LaneShared,
    readonly opts: OrtTrainerOptions,
    splitAdam: boolean,
  ) {
    this.learningRate = opts.learningRate;
    this.adam = adamOf(opts);
    this.accBeta1 = f(this.adam.beta1);
    this.accBeta2 = f(this.adam.beta2);
    this.ranges = ranges(shared.p.length, splitAdam ? remote.length + 1 : 1);
  }

  /**
   * `lanes` shares of `opts.batchSize` images each step (it must divide the batch). The models
   * give the architecture and the starting weights, as for OrtTrainer.create.
   */
  static async create(
    models: OrtModels,
    arch: { vae: VaeConfig; head: HeadConfig | null },
    opts: OrtTrainerOptions,
    lanes: number,
    o: OrtLanesOptions = {},
  ): Promise<OrtLanes> {
    if (!Number.isInteger(lanes) || lanes < 1 || opts.batchSize % lanes !== 0) {
      throw new Error(`ort lanes: ${lanes} lanes must divide the batch of ${opts.batchSize}`);
    }
    const share = { ...opts, batchSize: opts.batchSize / lanes, threads: 1, adam: "js" as const };
    const own = await OrtTrainer.create(models, share);
    const n = own.graph.size;
    const sab = () => new Float32Array(new SharedArrayBuffer(4 * n));
    const shared: LaneShared = {
      p: sab(),
      m: sab(),
      v: sab(),
      grads: Array.from({ length: lanes }, sab),
    };
    shared.p.set(own.paramsFlat);
    const remote: RemoteLane[] = [];
    try {
      for (let i = 1; i < lanes; i++) {
        remote.push(await RemoteLane.start({ ...arch, opts: share, shared, lane: i }));
      }
    } catch (e) {
      await Promise.all(remote.map((r) => r.close()));
      await own.dispose();
      throw e;
    }
    return new OrtLanes(own, remote, shared, opts, o.splitAdam ?? true);
  }

  get lanes(): number {
    return this.remote.length + 1;
  }

  /** The current parameters, flat ONNX layout (a view of the shared array). */
  get paramsFlat(): Float32Array {
    return this.shared.p;
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
    // The workers start first; this thread's share then runs while they compute theirs.
    const jobs = this.remote.map((lane, k) =>
      lane.run({
        kind: "grads",
        x: cut(x, k + 1, PIXELS),
        eps: cut(eps, k + 1, L),
        labels: labels ? cut(labels, k + 1, 1) : undefined,
      })
    );
    this.own.setParamsFlat(this.shared.p);
    const mine = await this.own.forwardBackward(
      cut(x, 0, PIXELS),
      cut(eps, 0, L),
      labels ? cut(labels, 0, 1) : undefined,
    );
    this.shared.grads[0].set(mine.grads);
    const rest = (await Promise.all(jobs)).map((r) => r.parts!);
    await this.update();
    const all = [mine.parts, ...rest];
    const mean = (k: keyof StepResult) => all.reduce((a, p) => a + p[k], 0) / n;
    return {
      loss: mean("loss"),
      rec: mean("rec"),
      kl: mean("kl"),
      ce: mean("ce"),
      correct: all.reduce((a, p) => a + p.correct, 0),
    };
  }

  /** Averages the lanes' gradients and applies Adam, each range on its lane. */
  private async update(): Promise<void> {
    const step: AdamStep = {
      ...this.adam,
      learningRate: this.learningRate,
      accBeta1: this.accBeta1,
      accBeta2: this.accBeta2,
    };
    const [mine, ...theirs] = this.ranges;
    const jobs = theirs.map(([from, to], k) =>
      this.remote[k].run({ kind: "adam", step, from, to })
    );
    const { p, m, v, grads } = this.shared;
    adamUpdateMean(p, m, v, grads, step, mine[0], mine[1]);
    await Promise.all(jobs);
    this.accBeta1 = f(this.accBeta1 * f(this.adam.beta1));
    this.accBeta2 = f(this.accBeta2 * f(this.adam.beta2));
    this.iterations++;
  }

  getOptimizerState(): AdamState {
    const g = this.own.graph;
    return {
      iterations: this.iterations,
      accBeta1: this.accBeta1,
      accBeta2: this.accBeta2,
      m: onnxToTfjs(g, this.shared.m),
      v: onnxToTfjs(g, this.shared.v),
    };
  }

  setOptimizerState(s: AdamState): void {
    tfjsToOnnx(this.own.graph, s.m, this.shared.m);
    tfjsToOnnx(this.own.graph, s.v, this.shared.v);
    this.iterations = s.iterations;
    this.accBeta1 = f(s.accBeta1);
    this.accBeta2 = f(s.accBeta2);
  }

  writeTo(models: OrtModelGroups): void {
    this.own.setParamsFlat(this.shared.p);
    this.own.writeTo(models);
  }

  async dispose(): Promise<void> {
    await Promise.all(this.remote.map((r) => r.close()));
    await this.own.dispose();
  }
}
