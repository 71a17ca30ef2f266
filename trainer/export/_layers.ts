/**
 * Converts the layers of a tfjs Sequential (NHWC) into ONNX nodes (NCHW), one layer at a time,
 * generically: Conv2D, Conv2DTranspose, Dense, Flatten, Reshape, Activation, BatchNormalization
 * (folded into the layer before it), and the dropout / noise layers (identity at inference).
 * Weights are re-laid out once at export so the graph needs no runtime Transpose on the usual
 * paths:
 *
 * - Conv kernels [KH,KW,Cin,Cout] -> [Cout,Cin,KH,KW]; ConvTranspose [KH,KW,Cout,Cin] ->
 *   [Cin,Cout,KH,KW]; tfjs "same" padding becomes the explicit (asymmetric) pads tf uses.
 * - ONNX flattens NCHW in (c,h,w) order, tfjs flattens NHWC in (h,w,c) order. A flat value
 *   that is in (c,h,w) order is tagged `chwOf`; the Dense consuming it gets its kernel rows
 *   permuted, and a Dense feeding a Reshape to [H,W,C] gets its output columns permuted, so
 *   the Reshape can produce NCHW directly. Elementwise layers (and softmax over a vector, which
 *   is permutation-equivariant) pass the tag through. Only when no Dense is adjacent does the
 *   converter fall back to an explicit Transpose.
 */
import type * as tf from "@tensorflow/tfjs";
import { foldBatchNorm, FOLDS_INTO, isBatchNorm } from "./_batchnorm.ts";
import type { GraphBuilder } from "./_proto.ts";
import { flatten, isSpatialReshape, nextConsumer, reshape, reshapeTarget } from "./_reshape.ts";
import { cfgOf, type Config, IDENTITY_LAYERS, type Value } from "./_value.ts";

export type { Value };

function pair(v: unknown, what: string, layer: tf.layers.Layer): [number, number] {
  const p = Array.isArray(v) ? v : [v, v];
  if (p.length !== 2 || !p.every((x) => Number.isInteger(x))) {
    throw new Error(
      `ONNX export: layer ${layer.name} has an unsupported ${what} ${JSON.stringify(v)}`,
    );
  }
  return p as [number, number];
}

function outShape(layer: tf.layers.Layer): number[] {
  const s = layer.outputShape;
  if (!Array.isArray(s) || Array.isArray(s[0])) {
    throw new Error(`ONNX export: layer ${layer.name} has several outputs`);
  }
  return (s as (number | null)[]).slice(1) as number[];
}

function weights(layer: tf.layers.Layer): Float32Array[] {
  return layer.getWeights().map((w) => w.dataSync() as Float32Array);
}

/** Index of (h,w,c) in tfjs NHWC flat order -> index in ONNX NCHW flat order. */
function chwIndex(h: number, w: number, c: number, [H, W]: [number, number, number]): number {
  return (c * H + h) * W + w;
}

/** Emits the node(s) of a Keras activation name; returns the output tensor name. */
export function activation(
  g: GraphBuilder,
  x: Value,
  act: unknown,
  name: string,
  output?: string,
): string {
  switch (act ?? "linear") {
    case "linear":
      return output ? g.op("Identity", name, [x.name], {}, output) : x.name;
    case "relu":
      return g.op("Relu", name, [x.name], {}, output);
    case "sigmoid":
      return g.op("Sigmoid", name, [x.name], {}, output);
    case "tanh":
      return g.op("Tanh", name, [x.name], {}, output);
    case "softmax":
      // Keras softmax is over the last (channel) axis, which is axis 1 in NCHW.
      return g.op("Softmax", name, [x.name], { axis: x.shape.length === 3 ? 1 : -1 }, output);
    default:
      throw new Error(
        `ONNX export: activation "${
          String(act)
        }" is not supported (use relu, linear, sigmoid, tanh or softmax)`,
      );
  }
}

export interface DenseOptions {
  /** Permute output columns from (h,w,c) to (c,h,w) of this shape (the Dense feeds a Reshape). */
  columnsChwOf?: [number, number, number];
  /** Exact output name (e.g. a graph output). */
  output?: string;
  /** Keep only these output columns [start, end) (used to split the moments layer into mu / logvar). */
  columns?: [number, number];
}

/** A Dense layer as one Gemm (+ activation), with the row/column permutations described above. */
export function dense(
  g: GraphBuilder,
  x: Value,
  layer: tf.layers.Layer,
  opts: DenseOptions = {},
): Value {
  const cfg = cfgOf(layer);
  if (x.shape.length !== 1) {
    throw new Error(
      `ONNX export: Dense layer ${layer.name} needs a flat input, got shape ${
        JSON.stringify(x.shape)
      }`,
    );
  }
  const [kernel, bias] = weights(layer);
  const inF = x.shape[0];
  const outAll = kernel.length / inF;
  const [c0, c1] = opts.columns ?? [0, outAll];
  const outF = c1 - c0;
  // ONNX row r takes the tfjs row that holds the same feature.
  const rowSrc = new Int32Array(inF);
  if (x.chwOf) {
    const [H, W, C] = x.chwOf;
    for (let h = 0; h < H; h++) {
      for (let w = 0; w < W; w++) {
        for (let c = 0; c < C; c++) rowSrc[chwIndex(h, w, c, x.chwOf)] = (h * W + w) * C + c;
      }
    }
  } else {
    for (let r = 0; r < inF; r++) rowSrc[r] = r;
  }
  const colSrc = new Int32Array(outF);
  if (opts.columnsChwOf) {
    const s = opts.columnsChwOf;
    const [H, W, C] = s;
    if (H * W * C !== outF) {
      throw new Error(
        `ONNX export: Dense layer ${layer.name} has ${outF} units, cannot reshape to ${
          JSON.stringify(s)
        }`,
      );
    }
    for (let h = 0; h < H; h++) {
      for (let w = 0; w < W; w++) {
        for (let c = 0; c < C; c++) colSrc[chwIndex(h, w, c, s)] = c0 + (h * W + w) * C + c;
      }
    }
  } else {
    for (let j = 0; j < outF; j++) colSrc[j] = c0 + j;
  }
  const B = new Float32Array(inF * outF);
  for (let r = 0; r < inF; r++) {
    for (let j = 0; j < outF; j++) B[r * outF + j] = kernel[rowSrc[r] * outAll + colSrc[j]];
  }
  const inputs = [x.name, g.floatInit(`${layer.name}.kernel`, [inF, outF], B)];
  if (cfg.useBias !== false && bias) {
    inputs.push(
      g.floatInit(`${layer.name}.bias`, [outF], Float32Array.from(colSrc, (k) => bias[k])),
    );
  }
  const act = cfg.activation;
  const linear = (act ?? "linear") === "linear";
  const y = g.op("Gemm", `${layer.name}/Gemm`, inputs, {}, linear ? opts.output : undefined);
  const v: Value = { name: y, shape: [outF], chwOf: opts.columnsChwOf };
  return { ...v, name: linear ? y : activation(g, v, act, `${layer.name}/act`, opts.output) };
}

/** tf's "same" padding for one spatial axis: total = max((out-1)*s + k - in, 0), extra at the end. */
function samePads(inSize: number, outSize: number, k: number, s: number): [number, number] {
  const total = Math.max((outSize - 1) * s + k - inSize, 0);
  const before = Math.floor(total / 2);
  return [before, total - before];
}

function checkConvCfg(layer: tf.layers.Layer, cfg: Config): void {
  if (cfg.dataFormat !== undefined && cfg.dataFormat !== "channelsLast") {
    throw new Error(
      `ONNX export: layer ${layer.name} uses dataFormat ${
        String(cfg.dataFormat)
      }; only channelsLast is supported`,
    );
  }
  if (cfg.dilationRate !== undefined) {
    const d = pair(cfg.dilationRate, "dilationRate", layer);
    if (d[0] !== 1 || d[1] !== 1) {
      throw new Error(`ONNX export: layer ${layer.name} uses dilation ${d}; only 1 is supported`);
    }
  }
  if (cfg.padding !== "same" && cfg.padding !== "valid") {
    throw new Error(
      `ONNX export: layer ${layer.name} uses padding "${
        String(cfg.padding)
      }"; only same/valid are supported`,
    );
  }
}

/**
 * What Conv2D and Conv2DTranspose export share: config checks, geometry, and the kernel moved
 * from tfjs [KH,KW,P,Q] to ONNX [Q,P,KH,KW]. For Conv2D P,Q = Cin,Cout (ONNX weight
 * [Cout,Cin,KH,KW]); for Conv2DTranspose tfjs stores [KH,KW,Cout,Cin] and ONNX wants
 * [Cin,Cout,KH,KW], so P,Q = Cout,Cin: the same permutation.
 */
function convParts(x: Value, layer: tf.layers.Layer, kind: "Conv2D" | "Conv2DTranspose") {
  const cfg = cfgOf(layer);
  checkConvCfg(layer, cfg);
  if (x.shape.length !== 3) {
    throw new Error(
      `ONNX export: ${kind} layer ${layer.name} needs an [H,W,C] input, got ${
        JSON.stringify(x.shape)
      }`,
    );
  }
  const [kh, kw] = pair(cfg.kernelSize, "kernelSize", layer);
  const [sh, sw] = pair(cfg.strides, "strides", layer);
  const [H, W, Cin] = x.shape;
  const out = outShape(layer);
  const Cout = out[2];
  const [kernel, bias] = weights(layer);
  const [P, Q] = kind === "Conv2D" ? [Cin, Cout] : [Cout, Cin];
  const w = new Float32Array(kernel.length);
  for (let a = 0; a < kh; a++) {
    for (let b = 0; b < kw; b++) {
      for (let p = 0; p < P; p++) {
        for (let q = 0; q < Q; q++) {
          w[((q * P + p) * kh + a) * kw + b] = kernel[((a * kw + b) * P + p) * Q + q];
        }
      }
    }
  }
  const inputs = (g: GraphBuilder) => {
    const list = [x.name, g.floatInit(`${layer.name}.kernel`, [Q, P, kh, kw], w)];
    if (cfg.useBias !== false && bias) list.push(g.floatInit(`${layer.name}.bias`, [Cout], bias));
    return list;
  };
  return { cfg, kh, kw, sh, sw, H, W, out, inputs };
}

/** Conv2D (NHWC, kernel [KH,KW,Cin,Cout]) -> ONNX Conv (NCHW, weight [Cout,Cin,KH,KW]). */
export function conv2d(g: GraphBuilder, x: Value, layer: tf.layers.Layer): Value {
  const { cfg, kh, kw, sh, sw, H, W, out, inputs } = convParts(x, layer, "Conv2D");
  const [pt, pb] = cfg.padding === "same" ? samePads(H, out[0], kh, sh) : [0, 0];
  const [pl, pr] = cfg.padding === "same" ? samePads(W, out[1], kw, sw) : [0, 0];
  const y = g.op("Conv", `${layer.name}/Conv`, inputs(g), {
    kernel_shape: [kh, kw],
    strides: [sh, sw],
    pads: [pt, pl, pb, pr],
    dilations: [1, 1],
    group: 1,
  });
  const v: Value = { name: y, shape: out };
  return { ...v, name: activation(g, v, cfg.activation, `${layer.name}/act`) };
}

/**
 * Conv2DTranspose -> ONNX ConvTranspose. tfjs computes it as the input-gradient of a forward
 * conv from an input of the output size m, so the forward conv's pads (before, after) are the
 * ConvTranspose pads, and output_padding makes up the rest of m:
 * m = s*(n-1) + output_padding + k - before - after.
 */
export function conv2dTranspose(g: GraphBuilder, x: Value, layer: tf.layers.Layer): Value {
  const { cfg, kh, kw, sh, sw, H, W, out, inputs } = convParts(x, layer, "Conv2DTranspose");
  const axis = (n: number, m: number, k: number, s: number): [number, number, number] => {
    const [before, after] = cfg.padding === "same" ? samePads(m, n, k, s) : [0, 0];
    const op = m - (s * (n - 1) + k - before - after);
    if (op < 0 || op >= s) {
      throw new Error(
        `ONNX export: layer ${layer.name}: no ONNX padding reproduces ${n} -> ${m} (k=${k}, s=${s})`,
      );
    }
    return [before, after, op];
  };
  const [pt, pb, oph] = axis(H, out[0], kh, sh);
  const [pl, pr, opw] = axis(W, out[1], kw, sw);
  const y = g.op("ConvTranspose", `${layer.name}/ConvTranspose`, inputs(g), {
    kernel_shape: [kh, kw],
    strides: [sh, sw],
    pads: [pt, pl, pb, pr],
    output_padding: [oph, opw],
    dilations: [1, 1],
    group: 1,
  });
  const v: Value = { name: y, shape: out };
  return { ...v, name: activation(g, v, cfg.activation, `${layer.name}/act`) };
}

/**
 * Converts the first `count` of `layers` in order, starting from `x`. A smaller `count` lets the
 * caller convert the remaining layers itself (the exporter splits the encoder's moments layer);
 * the look-ahead still sees them, so a Flatten before a caller-converted Dense is folded too.
 * A BatchNormalization right after a Conv2D or Dense is folded into it (_batchnorm.ts).
 */
export function convertLayers(
  g: GraphBuilder,
  layers: tf.layers.Layer[],
  x: Value,
  count = layers.length,
): Value {
  let v = x;
  const folded = new Set<number>();
  layers.slice(0, count).forEach((original, i) => {
    if (folded.has(i)) return;
    const fold = FOLDS_INTO.has(original.getClassName()) && isBatchNorm(layers[i + 1]);
    if (fold && i + 1 >= count) {
      throw new Error(
        `ONNX export: layer ${original.name} is followed by batch norm outside the converted range`,
      );
    }
    const layer = fold ? foldBatchNorm(original, layers[i + 1]) : original;
    if (fold) folded.add(i + 1);
    // The layer whose successor decides the Dense/Flatten layouts: the BN, when folded.
    const last = fold ? i + 1 : i;
    const kind = layer.getClassName();
    const cfg = cfgOf(layer);
    if (IDENTITY_LAYERS.has(kind)) return;
    switch (kind) {
      case "Activation":
        v = { ...v, name: activation(g, v, cfg.activation, `${layer.name}/act`) };
        return;
      case "Conv2D":
        v = conv2d(g, v, layer);
        return;
      case "Conv2DTranspose":
        v = conv2dTranspose(g, v, layer);
        return;
      case "Dense": {
        const next = nextConsumer(layers, last);
        v = dense(
          g,
          v,
          layer,
          isSpatialReshape(next)
            ? { columnsChwOf: reshapeTarget(next) as [number, number, number] }
            : {},
        );
        return;
      }
      case "Flatten":
        v = flatten(g, v, layer, nextConsumer(layers, i));
        return;
      case "Reshape":
        v = reshape(g, v, layer);
        return;
      case "BatchNormalization":
        throw new Error(
          `ONNX export: BatchNormalization ${layer.name} must directly follow a Conv2D or Dense (it is folded into it), it follows ${
            layers[i - 1]?.getClassName() ?? "the input"
          }`,
        );
      default:
        throw new Error(`ONNX export: layer ${layer.name} of type ${kind} is not supported`);
    }
  });
  if (v.chwOf && count === layers.length) {
    throw new Error(
      "ONNX export: internal error: a (c,h,w)-ordered value reached the end of the model",
    );
  }
  return v;
}
