/**
 * Inference-mode batch normalisation, folded into the Conv2D or Dense layer before it, so the
 * exported graph has no BatchNormalization op (and the int8 quantizer sees only Conv and Gemm).
 * At inference BN is per channel c: y = (x - mean) * s + beta with s = gamma / sqrt(var + eps),
 * which is affine in the layer's output, so it moves into the layer's weights:
 *
 *   W'[..., c] = W[..., c] * s[c],   b'[c] = (b[c] - mean[c]) * s[c] + beta[c]   (b = 0 without bias)
 *
 * Conv2D kernels [KH,KW,Cin,Cout] and Dense kernels [In,Out] both keep the output channel on the
 * last axis, so one rule covers both. The fold is valid only if the layer is linear before BN.
 */
import type * as tf from "@tensorflow/tfjs";
import { cfgOf } from "./_value.ts";

/** The layers a following BatchNormalization can be folded into. */
export const FOLDS_INTO = new Set(["Conv2D", "Dense"]);

export function isBatchNorm(layer: tf.layers.Layer | undefined): layer is tf.layers.Layer {
  return layer?.getClassName() === "BatchNormalization";
}

/** gamma, beta, moving mean, moving variance of a BN layer; absent gamma/beta are 1/0. */
function bnParams(bn: tf.layers.Layer, channels: number) {
  const cfg = cfgOf(bn);
  const axis = cfg.axis;
  const rank = (bn.outputShape as (number | null)[]).length;
  if (axis !== -1 && axis !== rank - 1) {
    throw new Error(
      `ONNX export: BatchNormalization ${bn.name} normalises axis ${
        JSON.stringify(axis)
      }; only the channel (last) axis is supported`,
    );
  }
  const w = bn.getWeights().map((t) => t.dataSync() as Float32Array);
  const scale = cfg.scale !== false, center = cfg.center !== false;
  const need = 2 + (scale ? 1 : 0) + (center ? 1 : 0);
  if (w.length !== need || w.some((a) => a.length !== channels)) {
    throw new Error(
      `ONNX export: BatchNormalization ${bn.name} has ${w.length} weights for ${channels} channels, expected ${need} of ${channels}`,
    );
  }
  let k = 0;
  const gamma = scale ? w[k++] : new Float32Array(channels).fill(1);
  const beta = center ? w[k++] : new Float32Array(channels);
  const [mean, variance] = [w[k], w[k + 1]];
  return { gamma, beta, mean, variance, eps: Number(cfg.epsilon ?? 1e-3) };
}

/**
 * `layer` (Conv2D or Dense, linear) with `bn` folded in: a stand-in layer whose weights are the
 * folded kernel and bias, read by the exporter like any other layer.
 */
export function foldBatchNorm(layer: tf.layers.Layer, bn: tf.layers.Layer): tf.layers.Layer {
  const cfg = cfgOf(layer);
  if (!FOLDS_INTO.has(layer.getClassName()) || (cfg.activation ?? "linear") !== "linear") {
    throw new Error(
      `ONNX export: BatchNormalization ${bn.name} must follow a linear Conv2D or Dense to be folded, it follows ${layer.getClassName()} ${layer.name} (activation ${
        String(cfg.activation)
      })`,
    );
  }
  const ws = layer.getWeights();
  const kernelShape = ws[0].shape;
  const [kernel, bias] = ws.map((t) => t.dataSync() as Float32Array);
  const C = (layer.outputShape as number[]).at(-1)!;
  const p = bnParams(bn, C);
  const s = Float64Array.from(p.gamma, (g, c) => g / Math.sqrt(p.variance[c] + p.eps));
  const w = Float32Array.from(kernel, (v, i) => v * s[i % C]);
  const hasBias = cfg.useBias !== false && bias !== undefined;
  const b = Float32Array.from(
    s,
    (sc, c) => ((hasBias ? bias[c] : 0) - p.mean[c]) * sc + p.beta[c],
  );
  const folded = Object.create(layer) as tf.layers.Layer;
  const shape = (a: Float32Array, dims: number[]) => ({ dataSync: () => a, shape: dims });
  (folded as unknown as { getWeights: () => unknown[] }).getWeights = () => [
    shape(w, kernelShape),
    shape(b, [C]),
  ];
  folded.getConfig = () => ({ ...layer.getConfig(), useBias: true });
  return folded;
}
