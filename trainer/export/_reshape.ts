/**
 * Flatten and Reshape layers, which decide the element order of flat values: ONNX flattens NCHW
 * in (c,h,w) order, tfjs flattens NHWC in (h,w,c) order. A Flatten feeding a Dense (or a Dense
 * feeding a spatial Reshape) keeps ONNX's order and tags the value `chwOf`, so the Dense's
 * weights absorb the permutation; anywhere else an explicit Transpose restores tfjs's order.
 */
import type * as tf from "@tensorflow/tfjs";
import type { GraphBuilder } from "./_proto.ts";
import { cfgOf, isOrderFree, type Value } from "./_value.ts";

/** The next layer after `i` that is not order-free (undefined at the end of the model). */
export function nextConsumer(layers: tf.layers.Layer[], i: number): tf.layers.Layer | undefined {
  for (let j = i + 1; j < layers.length; j++) if (!isOrderFree(layers[j])) return layers[j];
  return undefined;
}

export function reshapeTarget(layer: tf.layers.Layer): number[] {
  const t = cfgOf(layer).targetShape;
  if (!Array.isArray(t) || !t.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(
      `ONNX export: Reshape layer ${layer.name} has target ${
        JSON.stringify(t)
      }; only explicit positive sizes are supported`,
    );
  }
  return t as number[];
}

export function isSpatialReshape(layer: tf.layers.Layer | undefined): layer is tf.layers.Layer {
  return layer?.getClassName() === "Reshape" && reshapeTarget(layer).length === 3;
}

/** NCHW [H,W,C] value -> flat value in tfjs (h,w,c) order, via an explicit Transpose. */
function flattenToNhwcOrder(g: GraphBuilder, x: Value, name: string): Value {
  const t = g.op("Transpose", `${name}/ToNHWC`, [x.name], { perm: [0, 2, 3, 1] });
  return {
    name: g.op("Flatten", `${name}/Flatten`, [t], { axis: 1 }),
    shape: [x.shape.reduce((a, b) => a * b, 1)],
  };
}

/** A Flatten layer; `next` is the next layer that is not order-free. */
export function flatten(
  g: GraphBuilder,
  v: Value,
  layer: tf.layers.Layer,
  next: tf.layers.Layer | undefined,
): Value {
  if (v.shape.length === 1) return v;
  const size = v.shape.reduce((a, b) => a * b, 1);
  if (next?.getClassName() === "Dense" || isSpatialReshape(next)) {
    v = {
      name: g.op("Flatten", `${layer.name}/Flatten`, [v.name], { axis: 1 }),
      shape: [size],
      chwOf: v.shape as [number, number, number],
    };
  } else {
    v = flattenToNhwcOrder(g, v, layer.name);
  }
  return v;
}

/** A Reshape layer to a flat vector or to [H, W, C]. */
export function reshape(g: GraphBuilder, v: Value, layer: tf.layers.Layer): Value {
  const target = reshapeTarget(layer);
  const inSize = v.shape.reduce((a, b) => a * b, 1);
  if (target.reduce((a, b) => a * b, 1) !== inSize) {
    throw new Error(
      `ONNX export: Reshape layer ${layer.name} cannot reshape ${JSON.stringify(v.shape)} to ${
        JSON.stringify(target)
      }`,
    );
  }
  if (target.length === 1) {
    v = v.shape.length === 1 ? v : flattenToNhwcOrder(g, v, layer.name);
  } else if (target.length === 3 && v.shape.length === 1) {
    const [H, W, C] = target;
    if (v.chwOf && JSON.stringify(v.chwOf) === JSON.stringify(target)) {
      // The producer already emits (c,h,w) order: a plain Reshape yields NCHW.
      v = {
        name: g.op("Reshape", `${layer.name}/Reshape`, [
          v.name,
          g.int64Init(`${layer.name}.shape`, [-1, C, H, W]),
        ]),
        shape: target,
      };
    } else if (!v.chwOf) {
      const r = g.op("Reshape", `${layer.name}/Reshape`, [
        v.name,
        g.int64Init(`${layer.name}.shape`, [-1, H, W, C]),
      ]);
      v = {
        name: g.op("Transpose", `${layer.name}/ToNCHW`, [r], { perm: [0, 3, 1, 2] }),
        shape: target,
      };
    } else {
      throw new Error(
        `ONNX export: Reshape layer ${layer.name} to ${
          JSON.stringify(target)
        } follows a flatten of ${JSON.stringify(v.chwOf)}; not supported`,
      );
    }
  } else {
    throw new Error(
      `ONNX export: Reshape layer ${layer.name} from ${JSON.stringify(v.shape)} to ${
        JSON.stringify(target)
      } is not supported`,
    );
  }
  return v;
}
