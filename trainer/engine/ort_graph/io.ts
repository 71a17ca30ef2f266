/**
 * The tensor names and the result type of the training-step graphs (vae_step.ts,
 * classifier_step.ts), shared with the trainer that feeds them (../ort_train.ts).
 */
import type * as tf from "@tensorflow/tfjs";

/** A parameter graph input (ONNX layout) and where each element lives among the tfjs weights. */
export interface ParamInput {
  /** The tensor holding the parameter inside the graph (a slice of the flat input). */
  name: string;
  dims: number[];
  /** Where the parameter starts in the flat parameter vector. */
  offset: number;
  /** src[i] = index in the concatenated tfjs weights (see WeightSlot.offset) of element i. */
  src: Int32Array;
}

/** One tfjs weight (e.g. enc_conv1/kernel), in the order of model.weights of each model. */
export interface WeightSlot {
  model: string;
  layer: tf.layers.Layer;
  /** Index of this weight among layer.getWeights(). */
  index: number;
  shape: number[];
  offset: number;
  size: number;
}

export const TRAIN_IO = Object.freeze({
  /** All parameters, ONNX layouts, concatenated (ParamInput.offset). */
  params: "params",
  /** Gradient of the total loss w.r.t. `params` (gradient mode). */
  grads: "grads",
  /** Adam mode: slots in, and params / slots after the update out. */
  adamM: "adam_m",
  adamV: "adam_v",
  /** Adam mode: [1 - beta1^t, 1 - beta2^t, -learning rate] as float32. */
  adamScalars: "adam_scalars",
  paramsOut: "params_out",
  adamMOut: "adam_m_out",
  adamVOut: "adam_v_out",
  x: "x",
  eps: "eps",
  labels: "labels_onehot",
  classWeight: "class_weight",
  /** Classifier graphs with dropout: the dropout mask [B, units], 0 or 1/(1 - rate) per element. */
  dropoutMask: "dropout_mask",
  loss: "loss",
  rec: "rec",
  kl: "kl",
  ce: "ce",
  correct: "correct",
});

export interface TrainingGraph {
  bytes: Uint8Array;
  params: ParamInput[];
  /** Length of the flat parameter vector. */
  size: number;
  mode: "grads" | "adam";
  slots: WeightSlot[];
  totalWeights: number;
  numClasses: number;
  hasHead: boolean;
  /** "vae": x, eps (and labels) in; "classifier": x and labels (and the dropout mask) in. */
  kind: "vae" | "classifier";
  /** The classifier's dropout (its mask is an input), null without one. */
  dropout: { units: number; rate: number } | null;
}
