/**
 * What one step of a training graph is fed: the batch buffers (images, noise, one-hot labels,
 * dropout masks, the class weight, Adam's scalars) and the onnxruntime tensors over them, made
 * once per trainer and refilled in place for every step.
 */
import * as ort from "onnxruntime-node";
import { IMAGE_SIZE, PIXELS } from "../../common/labels.ts";
import { mulberry32 } from "../../common/random.ts";
import { TRAIN_IO, type TrainingGraph } from "./ort_graph/mod.ts";

export class StepFeeds {
  readonly feeds: Record<string, ort.Tensor>;
  readonly x: Float32Array;
  readonly eps: Float32Array;
  readonly labels: Float32Array | null;
  readonly mask: Float32Array | null;
  readonly classWeight = new Float32Array(1);
  /** 1 - beta1^t, 1 - beta2^t, -learning rate: what the graph's Adam reads per step. */
  readonly scalars = new Float32Array(3);
  maskRand: () => number;
  private readonly batchSize: number;

  constructor(
    private readonly graph: TrainingGraph,
    opts: { batchSize: number; latent: number; classWeight?: number; dropoutSeed?: number },
  ) {
    const B = this.batchSize = opts.batchSize, L = opts.latent;
    this.x = new Float32Array(B * IMAGE_SIZE * IMAGE_SIZE);
    this.eps = new Float32Array(B * L);
    this.labels = graph.hasHead ? new Float32Array(B * graph.numClasses) : null;
    this.mask = graph.dropout ? new Float32Array(B * graph.dropout.units) : null;
    this.maskRand = mulberry32(opts.dropoutSeed ?? 0);
    this.classWeight[0] = opts.classWeight ?? 0;
    const t = (data: Float32Array, dims: number[]) => new ort.Tensor("float32", data, dims);
    this.feeds = { [TRAIN_IO.x]: t(this.x, [B, 1, IMAGE_SIZE, IMAGE_SIZE]) };
    if (graph.kind === "vae") this.feeds[TRAIN_IO.eps] = t(this.eps, [B, L]);
    if (this.labels) this.feeds[TRAIN_IO.labels] = t(this.labels, [B, graph.numClasses]);
    if (this.labels && graph.kind === "vae") {
      this.feeds[TRAIN_IO.classWeight] = t(this.classWeight, []);
    }
    if (this.mask) this.feeds[TRAIN_IO.dropoutMask] = t(this.mask, [B, graph.dropout!.units]);
    this.feeds[TRAIN_IO.adamScalars] = t(this.scalars, [3]);
  }

  /** Copies one batch in (x [B,28,28,1], eps [B,L], labels [B] class ids) and draws dropout masks. */
  fill(x: ArrayLike<number>, eps: ArrayLike<number>, labels?: ArrayLike<number>): void {
    if (x.length !== this.x.length) {
      throw new Error(
        `ort engine: x has ${x.length} values, expected ${this.x.length} (batch ${this.batchSize} x ${PIXELS})`,
      );
    }
    if (eps.length !== this.eps.length) {
      throw new Error(`ort engine: eps has ${eps.length} values, expected ${this.eps.length}`);
    }
    this.x.set(x);
    this.eps.set(eps);
    if (this.mask) {
      const keep = 1 - this.graph.dropout!.rate, scale = 1 / keep;
      for (let i = 0; i < this.mask.length; i++) {
        this.mask[i] = this.maskRand() < keep ? scale : 0;
      }
    }
    if (this.labels) {
      if (!labels || labels.length !== this.batchSize) {
        throw new Error(`ort engine: the head needs ${this.batchSize} labels`);
      }
      const K = this.graph.numClasses;
      this.labels.fill(0);
      for (let i = 0; i < labels.length; i++) this.labels[i * K + labels[i]] = 1;
    }
  }
}
