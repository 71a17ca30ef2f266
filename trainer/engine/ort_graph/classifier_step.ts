/**
 * One training step of a pixel classifier (the experiments' CNN baseline) as a graph.
 */
import type * as tf from "@tensorflow/tfjs";
import { IMAGE_SIZE } from "../../../common/labels.ts";
import type { Value } from "../../export/_layers.ts";
import { backward } from "./backward.ts";
import { countHits, crossEntropy, finishGraph } from "./finish.ts";
import { TRAIN_IO, type TrainingGraph } from "./io.ts";
import {
  checkTrainable,
  forwardLayers,
  probeLayers,
  RecordingBuilder,
  type Shapes,
  type TapeNode,
  weightSlots,
} from "./tape.ts";

export interface ClassifierGraphSpec {
  /** A pixel classifier: [28,28,1] in, logits out; at most one Dropout (its mask becomes an input). */
  model: tf.Sequential;
  batch: number;
  mode?: "grads" | "adam";
  adam?: { beta1: number; beta2: number; epsilon: number };
}

/**
 * One training step of a pixel classifier (the experiments' CNN baseline): softmax
 * cross-entropy averaged over the batch, tfjs's Adam. Dropout, which the exporter drops, is
 * an elementwise Mul by a mask input, so the caller draws the random mask (train-mode dropout
 * as tfjs does it: keep with probability 1 - rate, scale kept units by 1/(1 - rate)).
 */
export function buildClassifierTrainingGraph(spec: ClassifierGraphSpec): TrainingGraph {
  const { model, batch: B } = spec;
  checkTrainable(model, true);
  const { slots, total } = weightSlots({ classifier: model });
  const g = new RecordingBuilder("classifier_training_step");
  const shapes: Shapes = new Map();
  const f = forwardWithDropout(g, model, probeLayers(model, slots), B, shapes);
  const v = f.out;
  if (v.shape.length !== 1) {
    throw new Error(
      `ort engine: ${model.name} outputs ${JSON.stringify(v.shape)}, expected class logits`,
    );
  }
  const K = v.shape[0];
  const logits = v.name;
  const onehot = g.input(TRAIN_IO.labels, [B, K]);
  crossEntropy(g, logits, onehot, B, "logsoftmax", TRAIN_IO.loss);
  countHits(g, logits, onehot);
  // d loss / d logits = (softmax - onehot) / B.
  const dl = g.op("Mul", "d_logits", [
    g.op("Sub", "d_logits_a", [g.op("Softmax", "softmax", [logits], { axis: -1 }), onehot]),
    g.scalar("inv_batch", 1 / B),
  ]);
  const grads = backward(g, f.tape, shapes, new Map([[logits, dl]]), f.noGrad);
  const { size, mode } = finishGraph(g, grads, spec, [TRAIN_IO.loss, TRAIN_IO.correct], total);
  return {
    bytes: g.encode(`latent-edge classifier training step (forward + backward), batch ${B}`),
    params: g.params,
    size,
    mode,
    slots,
    totalWeights: total,
    numClasses: K,
    hasHead: true,
    kind: "classifier",
    dropout: f.dropout,
  };
}

/** The classifier's forward pass, its one dropout (if any) a Mul by the mask input. */
function forwardWithDropout(
  g: RecordingBuilder,
  model: tf.Sequential,
  layers: tf.layers.Layer[],
  B: number,
  shapes: Shapes,
) {
  const x = g.input(TRAIN_IO.x, [B, 1, IMAGE_SIZE, IMAGE_SIZE]);
  shapes.set(x, [B, 1, IMAGE_SIZE, IMAGE_SIZE]);
  const rateOf = (l: tf.layers.Layer) => Number((l.getConfig() as { rate?: number }).rate);
  const drops = model.layers.map((l, i) => ({ l, i })).filter((e) =>
    e.l.getClassName() === "Dropout" && rateOf(e.l) > 0
  );
  if (drops.length > 1) {
    throw new Error(
      `ort engine: ${model.name} has ${drops.length} dropout layers; at most one is supported`,
    );
  }
  const cut = drops.length ? drops[0].i : layers.length;
  const first = forwardLayers(g, layers.slice(0, cut), {
    name: x,
    shape: [IMAGE_SIZE, IMAGE_SIZE, 1],
  }, shapes);
  const tape: TapeNode[] = [...first.tape];
  const noGrad = new Set([x]);
  if (!drops.length) return { out: first.out, tape, noGrad, dropout: null };
  const v: Value = first.out;
  if (v.shape.length !== 1) {
    throw new Error(
      `ort engine: dropout ${drops[0].l.name} follows a ${
        JSON.stringify(v.shape)
      } tensor; only dropout on dense features is supported`,
    );
  }
  const mask = g.input(TRAIN_IO.dropoutMask, [B, v.shape[0]]);
  shapes.set(mask, [B, v.shape[0]]);
  noGrad.add(mask);
  const start = g.tape.length;
  const y = g.op("Mul", "dropout", [v.name, mask]);
  shapes.set(y, [B, v.shape[0]]);
  tape.push(...g.tape.slice(start));
  const rest = forwardLayers(g, layers.slice(cut + 1), { name: y, shape: v.shape }, shapes);
  tape.push(...rest.tape);
  const dropout = { units: v.shape[0], rate: rateOf(drops[0].l) };
  return { out: rest.out, tape, noGrad, dropout };
}
