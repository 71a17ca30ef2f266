/**
 * The training-step graphs. Each is ONE ONNX graph (opset 13, default domain) that runs a whole VAE training step's
 * forward AND backward pass, from the tfjs Sequential models, so onnxruntime-node (native,
 * multi-threaded MLAS) can compute the gradients that tfjs would.
 *
 * The forward pass is emitted by the exporter itself (../export/_layers.ts convertLayers), so the
 * NHWC -> NCHW weight layouts, tf "same" pads and (c,h,w) flatten-order permutations have one
 * definition. A recording GraphBuilder turns every weight the exporter would store as an
 * initializer into a graph input instead (a slice of ONE flat input `params` holding every
 * parameter in its ONNX layout, so the optimizer state is three flat vectors and the graph's
 * outputs feed straight back in), and keeps a tape of the forward nodes; the backward pass
 * walks that tape in reverse with a hand-written rule per op (backward.ts).
 *
 * The loss part (reparameterisation, summed sigmoid BCE + KL, softmax CE of the joint head) and
 * its gradient are written out by hand (vae_step.ts). Mode "grads" outputs the flat
 * gradient; mode "adam" also applies tfjs's Adam update in the graph (bit-identical to
 * tf.train.adam's float32 ops) and outputs the new params and slots.
 *
 * Every parameter input also records `src`: for each element of the ONNX-layout tensor, the
 * index of the same weight in the concatenation of all tfjs weights (found by running the
 * exporter on "probe" weights whose values are their own indices), so params, gradients and
 * Adam slots convert between layouts by a gather/scatter.
 */
export { buildClassifierTrainingGraph, type ClassifierGraphSpec } from "./classifier_step.ts";
export { TRAIN_IO, type TrainingGraph } from "./io.ts";
export type { ParamInput, TapeNode, WeightSlot } from "./tape.ts";
export { weightSlots } from "./tape.ts";
export { buildTrainingGraph, type TrainingGraphSpec } from "./vae_step.ts";
