/**
 * What flows between converted layers (_layers.ts, _reshape.ts): a tensor name with its tfjs
 * shape and, for flat values, the element order ONNX gave it.
 */
import type * as tf from "@tensorflow/tfjs";

/** A tensor flowing through the graph. `shape` is the tfjs per-example shape (no batch). */
export interface Value {
  name: string;
  /** [H, W, C] (stored as NCHW in ONNX) or [F]. */
  shape: number[];
  /** Set on flat values whose ONNX element order is (c,h,w) of this [H,W,C], not tfjs's (h,w,c). */
  chwOf?: [number, number, number];
}

/** Layers that are the identity at inference time. */
export const IDENTITY_LAYERS = new Set([
  "Dropout",
  "SpatialDropout1D",
  "GaussianNoise",
  "GaussianDropout",
  "AlphaDropout",
  "InputLayer",
]);

/** Layers that act elementwise (or permutation-equivariantly on a vector), so a `chwOf` tag survives them. */
export function isOrderFree(layer: tf.layers.Layer): boolean {
  return IDENTITY_LAYERS.has(layer.getClassName()) || layer.getClassName() === "Activation";
}

export type Config = Record<string, unknown>;

export function cfgOf(layer: tf.layers.Layer): Config {
  return layer.getConfig() as Config;
}
