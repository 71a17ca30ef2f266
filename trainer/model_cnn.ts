/**
 * The multi-layer CNN baseline on raw pixels, the study's comparison for the VAE's heads: its
 * config and factory (the VAE and its heads are in ./model.ts). Outputs logits; the ONNX
 * exporter appends the Softmax.
 */
import * as tf from "@tensorflow/tfjs";
import { IMAGE_SIZE, NUM_CLASSES } from "../common/labels.ts";

function init(seed: number) {
  return tf.initializers.glorotUniform({ seed });
}

export interface CnnConfig {
  /** Filters of the conv blocks; each block is conv 3x3 stride 1 then conv 3x3 stride 2 (relu). */
  filters: number[];
  dense: number;
  dropout: number;
  seed: number;
  /** Classes K (default 10, Fashion-MNIST's). */
  classes?: number;
}

export const DEFAULT_CNN: Readonly<CnnConfig> = Object.freeze({
  filters: [32, 64],
  dense: 128,
  dropout: 0.3,
  seed: 11,
}) as CnnConfig;
/** The default CNN narrowed to a few thousand weights, without dropout: for fast tests. */
export const TINY_CNN: Readonly<CnnConfig> = Object.freeze({
  ...DEFAULT_CNN,
  filters: [4, 8],
  dense: 16,
  dropout: 0,
});

/**
 * The multi-layer CNN baseline on raw pixels: [N,28,28,1] -> [N,K] logits (K = cfg.classes). Downsampling is by
 * stride-2 convs rather than max-pooling: same accuracy class, and every op it needs has a fast
 * training kernel here (the wasm backend has no fast pooling gradient).
 */
export function buildPixelCnn(cfg: CnnConfig): tf.Sequential {
  const m = tf.sequential({ name: "pixel_cnn" });
  let k = 0;
  cfg.filters.forEach((filters, b) => {
    for (const stride of [1, 2]) {
      m.add(tf.layers.conv2d({
        ...(k === 0 ? { inputShape: [IMAGE_SIZE, IMAGE_SIZE, 1] } : {}),
        filters,
        kernelSize: 3,
        strides: stride,
        padding: "same",
        activation: "relu",
        kernelInitializer: tf.initializers.heNormal({ seed: cfg.seed * 1000 + k }),
        name: `cnn_conv${b + 1}${stride === 1 ? "a" : "b"}`,
      }));
      k++;
    }
  });
  m.add(tf.layers.flatten({ name: "cnn_flatten" }));
  m.add(
    tf.layers.dense({
      units: cfg.dense,
      activation: "relu",
      kernelInitializer: tf.initializers.heNormal({ seed: cfg.seed * 1000 + 90 }),
      name: "cnn_dense1",
    }),
  );
  if (cfg.dropout > 0) m.add(tf.layers.dropout({ rate: cfg.dropout, name: "cnn_dropout" }));
  m.add(
    tf.layers.dense({
      units: cfg.classes ?? NUM_CLASSES,
      kernelInitializer: init(cfg.seed * 1000 + 92),
      name: "cnn_logits",
    }),
  );
  return m;
}
