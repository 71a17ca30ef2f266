/**
 * The "ort" training engine: one VAE training step (forward, hand-written backward, loss parts)
 * runs as a single ONNX graph in onnxruntime-node (native MLAS kernels, intra-op threads),
 * including tfjs's exact Adam update (same formula, same float32 rounding at every operation,
 * epsilon 1e-7 = the float32 backends' epsilon()); a JS Adam (applyAdam) does the same.
 *
 * The tfjs Sequential models stay the one definition of the architecture and the source/target
 * of the weights: the graph is built from them (./ort_graph/, reusing the ONNX exporter's layer
 * conversion), `readFrom` loads their weights, `writeTo` stores the trained weights back, and the
 * optimizer state converts to/from tfjs's Adam layout (per tfjs weight, NHWC), so checkpoints are
 * interchangeable between the engines.
 *
 *   const t = await OrtTrainer.create(models, { latent, batchSize, learningRate, classWeight, threads });
 *   const r = await t.step(x, eps, labels);   // x: [B,28,28,1] floats in [0,1], eps: [B,L]
 *   t.writeTo(models);                         // before evaluating / exporting / checkpointing
 */
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import {
  buildClassifierTrainingGraph,
  buildTrainingGraph,
  type ParamInput,
  TRAIN_IO,
  type TrainingGraph,
} from "./ort_graph/mod.ts";
import { adamOf, type AdamState, adamUpdate, type AdamWhere } from "./ort_adam.ts";
import { StepFeeds } from "./ort_feeds.ts";
import { modelWeights, onnxToTfjs, type OrtModelGroups, tfjsToOnnx } from "./ort_layout.ts";
import type { HeadInput } from "../model.ts";

export {
  type AdamState,
  adamStateFromTfjs,
  adamStateToCheckpoint,
  type AdamWhere,
} from "./ort_adam.ts";

export interface OrtModels {
  encoder: tf.Sequential;
  decoder: tf.Sequential;
  head: tf.Sequential | null;
}

export interface OrtTrainerOptions {
  /** Latent size of a VAE graph (0 for a classifier graph). */
  latent: number;
  batchSize: number;
  learningRate: number;
  /** Weight of the head's cross-entropy (ignored without a head). Default 0. */
  classWeight?: number;
  /** What the VAE graph's head reads (model.ts HeadInput). Default "mu". */
  headInput?: HeadInput;
  /** onnxruntime intra-op threads (default 1: on these 2 shared, busy cores 2 was not faster). */
  threads?: number;
  /** Let idle intra-op threads spin (lower latency, burns the shared cores). Default false. */
  spin?: boolean;
  beta1?: number;
  beta2?: number;
  /** Default 1e-7, what tf.train.adam takes from a float32 backend's epsilon(). */
  epsilon?: number;
  /** Where Adam runs: "graph" (default, inside the training graph) or "js" (applyAdam); same results. */
  adam?: AdamWhere;
  /** Seed of the dropout masks (classifier graphs with dropout). Default 0. */
  dropoutSeed?: number;
  /** onnxruntime's per-node profile of the step session, written to `<prefix>_<date>.json`. */
  profileFilePrefix?: string;
}

export interface StepResult {
  loss: number;
  rec: number;
  kl: number;
  ce: number;
  correct: number;
}

const f = Math.fround;
const NO_EPS = new Float32Array(0);

export class OrtTrainer {
  readonly graph: TrainingGraph;
  readonly params: ParamInput[];
  /** All parameters, ONNX layouts, concatenated (ParamInput.offset); replaced after each graph-Adam step. */
  private p: Float32Array;
  private m: Float32Array;
  private v: Float32Array;
  private readonly in: StepFeeds;
  private accBeta1: number;
  private accBeta2: number;
  iterations = 0;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;
  learningRate: number;

  private constructor(
    private session: ort.InferenceSession,
    private gradSession: ort.InferenceSession | null,
    graph: TrainingGraph,
    readonly opts: OrtTrainerOptions,
  ) {
    this.graph = graph;
    this.params = graph.params;
    this.p = new Float32Array(graph.size);
    this.m = new Float32Array(graph.size);
    this.v = new Float32Array(graph.size);
    ({ beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon } = adamOf(opts));
    this.learningRate = opts.learningRate;
    this.accBeta1 = f(this.beta1);
    this.accBeta2 = f(this.beta2);
    this.in = new StepFeeds(graph, opts);
    this.bindState();
  }

  /** (Re)creates the feeds of the state arrays (they are replaced by graph-Adam outputs). */
  private bindState(): void {
    const n = this.graph.size;
    this.in.feeds[TRAIN_IO.params] = new ort.Tensor("float32", this.p, [n]);
    this.in.feeds[TRAIN_IO.adamM] = new ort.Tensor("float32", this.m, [n]);
    this.in.feeds[TRAIN_IO.adamV] = new ort.Tensor("float32", this.v, [n]);
  }

  /**
   * Builds the graph from the models, opens the session(s) and loads the models' weights.
   * `adam: "graph"` (default) runs the Adam update inside the training graph; "js" computes
   * gradients in the graph and Adam here (same results; slower, see the benchmark).
   */
  static create(models: OrtModels, opts: OrtTrainerOptions): Promise<OrtTrainer> {
    const spec = {
      ...models,
      headInput: opts.headInput,
      latent: opts.latent,
      batch: opts.batchSize,
      adam: adamOf(opts),
    };
    return OrtTrainer.open((mode) => buildTrainingGraph({ ...spec, mode }), models, opts);
  }

  /**
   * A trainer for a pixel classifier (softmax cross-entropy; dropout masks drawn here from
   * `dropoutSeed`). Step with `classifierStep(x, labels)`; read/write with `{ classifier: model }`.
   */
  static createClassifier(
    model: tf.Sequential,
    opts: Omit<OrtTrainerOptions, "latent" | "classWeight">,
  ): Promise<OrtTrainer> {
    const full: OrtTrainerOptions = { ...opts, latent: 0 };
    const spec = { model, batch: opts.batchSize, adam: adamOf(full) };
    return OrtTrainer.open((mode) => buildClassifierTrainingGraph({ ...spec, mode }), {
      classifier: model,
    }, full);
  }

  private static async open(
    build: (mode: "grads" | "adam") => TrainingGraph,
    models: OrtModelGroups,
    opts: OrtTrainerOptions,
  ): Promise<OrtTrainer> {
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) {
      throw new Error(`ort engine: threads must be a positive integer, got ${threads}`);
    }
    const sessionOpts: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: "all",
      extra: { session: { intra_op: { allow_spinning: opts.spin ? "1" : "0" } } },
      ...(opts.profileFilePrefix
        ? { enableProfiling: true, profileFilePrefix: opts.profileFilePrefix }
        : {}),
    };
    const where = opts.adam ?? "graph";
    const grads = build("grads");
    const graph = where === "graph" ? build("adam") : grads;
    const session = await ort.InferenceSession.create(graph.bytes, sessionOpts);
    // With graph Adam, the gradient-only session (tests, tools) is opened on first use.
    const t = new OrtTrainer(session, where === "js" ? session : null, graph, opts);
    t.gradGraph = grads;
    t.sessionOpts = sessionOpts;
    t.readFrom(models);
    return t;
  }

  private gradGraph!: TrainingGraph;
  private sessionOpts!: ort.InferenceSession.SessionOptions;

  get classWeight(): number {
    return this.in.classWeight[0];
  }

  private toTfjs(flatOnnx: Float32Array): Float32Array[] {
    return onnxToTfjs(this.graph, flatOnnx);
  }

  private fromTfjs(perWeight: ArrayLike<number>[], into: Float32Array): void {
    tfjsToOnnx(this.graph, perWeight, into);
  }

  /** Loads the models' current weights (models of the same architecture as the graph's). */
  readFrom(models: OrtModelGroups): void {
    this.fromTfjs(modelWeights(this.graph, models), this.p);
  }

  /** The current parameters, ONNX layout, flat (ParamInput.offset); the trainer's own array. */
  get paramsFlat(): Float32Array {
    return this.p;
  }

  /** Replaces the parameters with a flat ONNX-layout copy (another lane's, see ort_lanes.ts). */
  setParamsFlat(p: Float32Array): void {
    if (p.length !== this.p.length) {
      throw new Error(`ort engine: ${p.length} parameters, expected ${this.p.length}`);
    }
    this.p.set(p);
  }

  /** The current parameters in tfjs layout, one array per tfjs weight (model, layer, weight order). */
  weightsTfjs(): Float32Array[] {
    return this.toTfjs(this.p);
  }

  /** Copies the trained parameters into the tfjs models (which then evaluate/export/checkpoint as usual). */
  writeTo(models: OrtModelGroups): void {
    const per = this.weightsTfjs();
    const groups: Record<string, tf.Sequential | null | undefined> = models;
    const slots = this.graph.slots;
    for (const [name, model] of Object.entries(groups)) {
      if (!model) continue;
      const own = slots.map((s, k) => ({ s, k })).filter((e) => e.s.model === name);
      if (own.length !== model.weights.length) {
        throw new Error(
          `ort engine: ${name} has ${model.weights.length} weights, the trainer ${own.length}`,
        );
      }
      const ts = own.map((e) => tf.tensor(per[e.k], e.s.shape));
      model.setWeights(ts);
      tf.dispose(ts);
    }
  }

  getOptimizerState(): AdamState {
    return {
      iterations: this.iterations,
      accBeta1: this.accBeta1,
      accBeta2: this.accBeta2,
      m: this.toTfjs(this.m),
      v: this.toTfjs(this.v),
    };
  }

  setOptimizerState(s: AdamState): void {
    this.fromTfjs(s.m, this.m);
    this.fromTfjs(s.v, this.v);
    this.iterations = s.iterations;
    this.accBeta1 = f(s.accBeta1);
    this.accBeta2 = f(s.accBeta2);
  }

  private static parts(out: ort.InferenceSession.OnnxValueMapType): StepResult {
    const num = (k: string) => (out[k] ? (out[k].data as Float32Array)[0] : 0);
    return {
      loss: num(TRAIN_IO.loss),
      rec: num(TRAIN_IO.rec),
      kl: num(TRAIN_IO.kl),
      ce: num(TRAIN_IO.ce),
      correct: num(TRAIN_IO.correct),
    };
  }

  /** Loss parts and the flat gradient (ONNX layout) of one batch; no update. */
  async forwardBackward(
    x: ArrayLike<number>,
    eps: ArrayLike<number>,
    labels?: ArrayLike<number>,
  ): Promise<{ parts: StepResult; grads: Float32Array }> {
    if (!this.gradSession) {
      this.gradSession = await ort.InferenceSession.create(this.gradGraph.bytes, this.sessionOpts);
    }
    this.in.fill(x, eps, labels);
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of this.gradSession.inputNames) feeds[name] = this.in.feeds[name];
    const out = await this.gradSession.run(feeds);
    return { parts: OrtTrainer.parts(out), grads: out[TRAIN_IO.grads].data as Float32Array };
  }

  /** Gradients in tfjs layout (one per tfjs weight), for tests and tools. */
  async gradientsTfjs(
    x: ArrayLike<number>,
    eps: ArrayLike<number>,
    labels?: ArrayLike<number>,
  ): Promise<{ parts: StepResult; grads: Float32Array[] }> {
    const r = await this.forwardBackward(x, eps, labels);
    return { parts: r.parts, grads: this.toTfjs(r.grads) };
  }

  /** One training step (gradients, then Adam). x is [B,28,28,1] (= NCHW with C=1), eps [B,L], labels [B] class ids. */
  async step(
    x: ArrayLike<number>,
    eps: ArrayLike<number>,
    labels?: ArrayLike<number>,
  ): Promise<StepResult> {
    if (this.graph.mode === "grads") {
      const { parts, grads } = await this.forwardBackward(x, eps, labels);
      this.applyAdam(grads);
      return parts;
    }
    this.in.fill(x, eps, labels);
    this.in.scalars[0] = f(1 - this.accBeta1);
    this.in.scalars[1] = f(1 - this.accBeta2);
    this.in.scalars[2] = f(-this.learningRate);
    const out = await this.session.run(this.in.feeds);
    this.p = out[TRAIN_IO.paramsOut].data as Float32Array;
    this.m = out[TRAIN_IO.adamMOut].data as Float32Array;
    this.v = out[TRAIN_IO.adamVOut].data as Float32Array;
    this.bindState();
    this.advanceBetaPowers();
    return OrtTrainer.parts(out);
  }

  /** One classifier training step (classifier graphs): x [B,28,28,1] in [0,1], labels [B] class ids. */
  classifierStep(x: ArrayLike<number>, labels: ArrayLike<number>): Promise<StepResult> {
    if (this.graph.kind !== "classifier") {
      throw new Error(
        "ort engine: classifierStep needs a classifier graph (OrtTrainer.createClassifier)",
      );
    }
    return this.step(x, NO_EPS, labels);
  }

  /** Overrides the next dropout masks (tests: the same mask as a tfjs reference). */
  setMaskSource(next: () => number): void {
    this.in.maskRand = next;
  }

  private advanceBetaPowers(): void {
    this.accBeta1 = f(this.accBeta1 * f(this.beta1));
    this.accBeta2 = f(this.accBeta2 * f(this.beta2));
    this.iterations++;
  }

  /** Adam update from gradients in tfjs layout (one per tfjs weight): tests, external gradients. */
  applyGradientsTfjs(grads: Float32Array[]): void {
    const onnx = new Float32Array(this.graph.size);
    this.fromTfjs(grads, onnx);
    this.applyAdam(onnx);
  }

  /** tfjs AdamOptimizer.applyGradients on the flat ONNX-layout gradient (./ort_adam.ts adamUpdate). */
  applyAdam(g: Float32Array): void {
    const { beta1, beta2, epsilon, learningRate, accBeta1, accBeta2 } = this;
    adamUpdate(this.p, this.m, this.v, g, {
      beta1,
      beta2,
      epsilon,
      learningRate,
      accBeta1,
      accBeta2,
    });
    this.advanceBetaPowers();
  }

  /** Ends the profile of `profileFilePrefix` (onnxruntime writes the file now). */
  endProfiling(): void {
    this.session.endProfiling();
  }

  async dispose(): Promise<void> {
    await this.session.release();
    if (this.gradSession && this.gradSession !== this.session) await this.gradSession.release();
  }
}
