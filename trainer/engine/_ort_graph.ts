/**
 * Builds ONE ONNX graph (opset 13, default domain) that runs a whole VAE training step's
 * forward AND backward pass, from the tfjs Sequential models, so onnxruntime-node (native,
 * multi-threaded MLAS) can compute the gradients that tfjs would.
 *
 * The forward pass is emitted by the exporter itself (../export/_layers.ts convertLayers), so the
 * NHWC -> NCHW weight layouts, tf "same" pads and (c,h,w) flatten-order permutations have one
 * definition. A recording GraphBuilder turns every weight the exporter would store as an
 * initializer into a graph input instead (a slice of ONE flat input `params` holding every
 * parameter in its ONNX layout, so the optimizer state is three flat vectors and the graph's
 * outputs feed straight back in), and keeps a tape of the forward nodes; the backward pass
 * walks that tape in reverse with a hand-written rule per op:
 *
 * - Gemm Y = X W + b: dX = dY W^T, dW = X^T dY (Gemm transposes), db = ReduceSum(dY, 0).
 * - Relu: dX = dY * Cast(Y > 0) (the fastest of the forms tried, docs/performance.md).
 * - Flatten / Reshape: Reshape back; Transpose: inverse permutation.
 * - Conv (stride s, pads p): dX = ConvTranspose(dY, W, s, p, output_padding to restore H);
 *   dW = Conv(x as [Cin,B,H,W], dy as the filter [Cout,B,OH,OW], dilation s, pads p), sliced
 *   to k x k and transposed [Cin,Cout,.] -> [Cout,Cin,.]; db = ReduceSum(dY, [0,2,3]).
 * - ConvTranspose: dX = Conv(dY, W, s, p); dW = the same trick with the roles of x and dy
 *   swapped (dy as [Cout,B,OH,OW] is the input, x as [Cin,B,H,W] the filter).
 *   (FilterGradMethod "shift-gemm" is an alternative formulation of both filter gradients.)
 *
 * The loss part (reparameterisation, summed sigmoid BCE + KL, softmax CE of the joint head) and
 * its gradient are written out by hand in buildTrainingGraph. Mode "grads" outputs the flat
 * gradient; mode "adam" also applies tfjs's Adam update in the graph (bit-identical to
 * tf.train.adam's float32 ops) and outputs the new params and slots.
 *
 * Every parameter input also records `src`: for each element of the ONNX-layout tensor, the
 * index of the same weight in the concatenation of all tfjs weights (found by running the
 * exporter on "probe" weights whose values are their own indices), so params, gradients and
 * Adam slots convert between layouts by a gather/scatter.
 */
import type * as tf from "@tensorflow/tfjs";
import { convertLayers, type Value } from "../export/_layers.ts";
import { type AttrValue, GraphBuilder, type OnnxDim } from "../export/_proto.ts";

export interface TapeNode {
  op: string;
  inputs: string[];
  attrs: Record<string, AttrValue>;
  outputs: string[];
}

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

/**
 * A GraphBuilder that, while `paramMode` is on, turns each float initializer into a parameter
 * (a slice of the flat `params` input) and records its probe values; it also records every node
 * (the tape) and int64 constants (for shape inference of Reshape).
 */
class RecordingBuilder extends GraphBuilder {
  paramMode = false;
  readonly tape: TapeNode[] = [];
  readonly params: ParamInput[] = [];
  readonly int64s = new Map<string, number[]>();
  private approved = new Set<string>();
  private quiet = false;

  override reserve(name: string): string {
    if (this.approved.delete(name)) return name;
    return super.reserve(name);
  }

  /** Parameters are slices of one flat input (TRAIN_IO.params), in ONNX layout, in creation order. */
  override floatInit(base: string, dims: number[], values: Float32Array): string {
    if (!this.paramMode) return super.floatInit(base, dims, values);
    const offset = this.params.reduce((a, p) => a + p.src.length, 0);
    const size = values.length;
    // Not taped: to the backward pass a parameter is a leaf.
    this.quiet = true;
    const flat = this.op("Slice", `${base}/slice`, [TRAIN_IO.params, this.int64Init(`${base}.start`, [offset]), this.int64Init(`${base}.end`, [offset + size])]);
    const name = this.op("Reshape", base, [flat, this.int64Init(`${base}.shape`, dims)]);
    this.quiet = false;
    const src = new Int32Array(size);
    for (let i = 0; i < size; i++) src[i] = values[i];
    this.params.push({ name, dims: [...dims], offset, src });
    return name;
  }

  /** Declares an input whose name was already used by nodes (e.g. the flat parameter vector). */
  lateInput(name: string, dims: OnnxDim[]): void {
    this.approved.add(name);
    this.input(name, dims);
  }

  override int64Init(base: string, values: number[]): string {
    const name = super.int64Init(base, values);
    this.int64s.set(name, values);
    return name;
  }

  override node(op: string, name: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs?: string[]): string[] {
    const outs = super.node(op, name, inputs, attrs, outputs);
    if (!this.quiet) this.tape.push({ op, inputs, attrs, outputs: outs });
    return outs;
  }

  /** A float constant (initializer) even in param mode. */
  constant(base: string, dims: number[], values: number[]): string {
    return super.floatInit(base, dims, Float32Array.from(values));
  }

  scalar(base: string, v: number): string {
    return this.constant(base, [], [v]);
  }
}

/** Layers the training graph supports; anything else (or dropout > 0) is refused up front. */
const SUPPORTED = new Set(["Conv2D", "Conv2DTranspose", "Dense", "Flatten", "Reshape", "Dropout", "Activation", "InputLayer"]);

function checkTrainable(model: tf.Sequential, allowDropout = false): void {
  for (const layer of model.layers) {
    const kind = layer.getClassName();
    if (!SUPPORTED.has(kind)) throw new Error(`ort engine: layer ${layer.name} of type ${kind} is not supported`);
    const cfg = layer.getConfig() as Record<string, unknown>;
    if (kind === "Dropout" && Number(cfg.rate) > 0 && !allowDropout) {
      throw new Error(`ort engine: layer ${layer.name} is a dropout of rate ${cfg.rate}; training with dropout is not supported (use the tfjs engine)`);
    }
    const act = String(cfg.activation ?? "linear");
    if (act !== "linear" && act !== "relu") throw new Error(`ort engine: layer ${layer.name} uses activation ${act}; only relu and linear are supported`);
  }
}

/** Lists the tfjs weights of the models in order and gives each its global offset. */
export function weightSlots(models: Record<string, tf.Sequential>): { slots: WeightSlot[]; total: number } {
  const slots: WeightSlot[] = [];
  let offset = 0;
  for (const [model, m] of Object.entries(models)) {
    for (const layer of m.layers) {
      layer.weights.forEach((w, index) => {
        const shape = w.shape as number[];
        const size = shape.reduce((a, b) => a * b, 1);
        slots.push({ model, layer, index, shape, offset, size });
        offset += size;
      });
    }
  }
  if (offset >= 1 << 24) throw new Error(`ort engine: ${offset} weights is too many for float32 index probes`);
  return { slots, total: offset };
}

/**
 * The layers of `model` with getWeights() replaced by probes: weight k of a layer holds the
 * values offset..offset+size-1 (exact in float32 below 2^24), so what the exporter writes is
 * the index map from the ONNX layout to the tfjs one. Everything else reads the real layer.
 */
function probeLayers(model: tf.Sequential, slots: WeightSlot[]): tf.layers.Layer[] {
  return model.layers.map((layer) => {
    const own = slots.filter((s) => s.layer === layer);
    const probe = Object.create(layer) as tf.layers.Layer;
    (probe as unknown as { getWeights: () => unknown[] }).getWeights = () =>
      own.map((s) => {
        const v = new Float32Array(s.size);
        for (let i = 0; i < s.size; i++) v[i] = s.offset + i;
        return { dataSync: () => v, shape: s.shape };
      });
    return probe;
  });
}

type Shapes = Map<string, number[]>;

const prod = (a: number[]) => a.reduce((x, y) => x * y, 1);

function ints(a: AttrValue | undefined, fallback: number[]): number[] {
  return Array.isArray(a) ? a : fallback;
}

/** Static shape inference over the tape (batch fixed), for the ops the exporter emits. */
function inferShapes(g: RecordingBuilder, nodes: TapeNode[], shapes: Shapes): void {
  for (const n of nodes) {
    const x = shapes.get(n.inputs[0]);
    if (!x) throw new Error(`ort engine: internal error: no shape for ${n.inputs[0]} (${n.op})`);
    let y: number[];
    switch (n.op) {
      case "Relu":
      case "Identity":
      case "Mul":
      case "Sigmoid":
      case "Tanh":
      case "Softmax":
        y = x;
        break;
      case "Gemm": {
        const w = shapes.get(n.inputs[1])!;
        y = [x[0], n.attrs.transB === 1 ? w[0] : w[1]];
        break;
      }
      case "Flatten":
        y = [x[0], prod(x.slice(1))];
        break;
      case "Reshape": {
        const t = g.int64s.get(n.inputs[1])!.map((d, i) => (d === 0 ? x[i] : d));
        const known = prod(t.filter((d) => d !== -1));
        y = t.map((d) => (d === -1 ? prod(x) / known : d));
        break;
      }
      case "Transpose":
        y = ints(n.attrs.perm, []).map((p) => x[p]);
        break;
      case "Conv":
      case "ConvTranspose": {
        const w = shapes.get(n.inputs[1])!;
        const k = ints(n.attrs.kernel_shape, w.slice(2));
        const s = ints(n.attrs.strides, [1, 1]);
        const d = ints(n.attrs.dilations, [1, 1]);
        const p = ints(n.attrs.pads, [0, 0, 0, 0]);
        const op = ints(n.attrs.output_padding, [0, 0]);
        if ((n.attrs.group ?? 1) !== 1) throw new Error("ort engine: grouped convolutions are not supported");
        const sp = [0, 1].map((i) =>
          n.op === "Conv"
            ? Math.floor((x[2 + i] + p[i] + p[i + 2] - ((k[i] - 1) * d[i] + 1)) / s[i]) + 1
            : s[i] * (x[2 + i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 - p[i] - p[i + 2]
        );
        y = [x[0], n.op === "Conv" ? w[0] : w[1], ...sp];
        break;
      }
      default:
        throw new Error(`ort engine: op ${n.op} (from the exporter) has no shape rule`);
    }
    shapes.set(n.outputs[0], y);
  }
}

/**
 * Emits the backward pass of `nodes` (a forward tape segment) given the gradients of some of
 * its outputs. Returns the gradient of every tensor reached (parameters and inputs included),
 * except those in `noGrad` (e.g. the image input) which are not computed.
 */
function backward(g: RecordingBuilder, nodes: TapeNode[], shapes: Shapes, seeds: Map<string, string>, noGrad: Set<string>, filterGrad: FilterGradMethod): Map<string, string> {
  const grads = new Map<string, string[]>();
  for (const [k, v] of seeds) grads.set(k, [v]);
  const gradOf = (name: string): string | undefined => {
    const list = grads.get(name);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) {
      const sum = list.reduce((a, b) => g.op("Add", `grad_acc/${name}`, [a, b]));
      grads.set(name, [sum]);
      return sum;
    }
    return list[0];
  };
  const add = (name: string, grad: string) => {
    if (noGrad.has(name)) return;
    const list = grads.get(name) ?? [];
    list.push(grad);
    grads.set(name, list);
  };
  const i64 = (base: string, v: number[]) => g.int64Init(base, v);
  const bwd = (op: string) => `bwd/${op}`;

  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    const dy = gradOf(n.outputs[0]);
    if (!dy) continue;
    const [x, w, b] = n.inputs;
    const xs = shapes.get(x)!;
    switch (n.op) {
      case "Identity":
        add(x, dy);
        break;
      case "Mul":
        // Only x * mask with a constant/input mask (dropout) is taped.
        if (!noGrad.has(w)) throw new Error("ort engine: Mul has a gradient rule only for a mask without gradient");
        add(x, g.op("Mul", bwd("mask"), [dy, w]));
        break;
      case "Relu": {
        // Mask from the output (y > 0 iff x > 0); Greater + Cast is the fastest form.
        const mask = g.op("Cast", bwd("relu_mask"), [g.op("Greater", bwd("relu_gt"), [n.outputs[0], g.scalar("zero", 0)])], { to: 1 });
        add(x, g.op("Mul", bwd("relu"), [dy, mask]));
        break;
      }
      case "Flatten":
      case "Reshape":
        add(x, g.op("Reshape", bwd("reshape"), [dy, i64("bwd_shape", [-1, ...xs.slice(1)])]));
        break;
      case "Transpose": {
        const perm = ints(n.attrs.perm, []);
        const inv = perm.map((_, j) => perm.indexOf(j));
        add(x, g.op("Transpose", bwd("transpose"), [dy], { perm: inv }));
        break;
      }
      case "Gemm": {
        const a = n.attrs;
        if ((a.transA ?? 0) !== 0 || (a.transB ?? 0) !== 0 || a.alpha !== undefined || a.beta !== undefined) {
          throw new Error("ort engine: only plain Gemm (no transpose, alpha = beta = 1) has a gradient rule");
        }
        if (!noGrad.has(x)) add(x, g.op("Gemm", bwd("gemm_dx"), [dy, w], { transB: 1 }));
        add(w, g.op("Gemm", bwd("gemm_dw"), [x, dy], { transA: 1 }));
        if (b) add(b, g.op("ReduceSum", bwd("gemm_db"), [dy, i64("axes0", [0])], { keepdims: 0 }));
        break;
      }
      case "Conv":
      case "ConvTranspose": {
        const ws = shapes.get(w)!;
        const ys = shapes.get(n.outputs[0])!;
        const k = ints(n.attrs.kernel_shape, ws.slice(2));
        const s = ints(n.attrs.strides, [1, 1]);
        const p = ints(n.attrs.pads, [0, 0, 0, 0]);
        const d = ints(n.attrs.dilations, [1, 1]);
        if (d[0] !== 1 || d[1] !== 1) throw new Error("ort engine: dilated convolutions have no gradient rule");
        const conv = n.op === "Conv";
        if (!noGrad.has(x)) {
          if (conv) {
            // H = s*(OH-1) + op + k - pads: the output padding that restores the input size.
            const op = [0, 1].map((j) => xs[2 + j] - (s[j] * (ys[2 + j] - 1) + k[j] - p[j] - p[j + 2]));
            add(x, g.op("ConvTranspose", bwd("conv_dx"), [dy, w], { kernel_shape: k, strides: s, pads: p, output_padding: op, dilations: [1, 1], group: 1 }));
          } else {
            add(x, g.op("Conv", bwd("convT_dx"), [dy, w], { kernel_shape: k, strides: s, pads: p, dilations: [1, 1], group: 1 }));
          }
        }
        // Conv: dW[co,ci,a,b] = sum dy[n,co,i,j] xpad[n,ci,i*s+a,j*s+b];
        // ConvTranspose: dW[ci,co,a,b] = sum x[n,ci,i,j] dypad[n,co,i*s+a,j*s+b].
        const [small, ss, big, bs] = conv ? [dy, ys, x, xs] : [x, xs, dy, ys];
        const dw = filterGrad === "shift-gemm" ? filterGradShiftGemm(g, small, ss, big, bs, k, s, p) : filterGradDilatedConv(g, small, ss, big, bs, k, s, p);
        add(w, dw);
        if (b) add(b, g.op("ReduceSum", bwd("conv_db"), [dy, i64("axes023", [0, 2, 3])], { keepdims: 0 }));
        break;
      }
      default:
        throw new Error(`ort engine: op ${n.op} has no gradient rule`);
    }
  }
  const out = new Map<string, string>();
  for (const name of grads.keys()) {
    const gname = gradOf(name);
    if (gname) out.set(name, gname);
  }
  return out;
}

/**
 * How a filter gradient R[cs,cb,a,b] = sum_{n,i,j} small[n,cs,i,j] * bigpad[n,cb,i*s+a,j*s+b]
 * is computed (bigpad = big padded by pads[0] on top, pads[1] on the left, zeros elsewhere):
 *
 * - "dilated-conv" (default): one Conv with the batch as channels: big as [Cb,B,H,W] the input,
 *   small as [Cs,B,h,w] the filter, dilation s; output [Cb,Cs,k',k'] sliced to k and transposed.
 *   MLAS runs it as skinny GEMMs (N = k'*k') after an im2col of a huge kernel: a large share
 *   of the step (docs/performance.md).
 * - "shift-gemm": big is split into its s*s stride phases (Pad, SpaceToDepth, Transpose),
 *   small is padded to the phase grid [Hp,Wp], both flattened over (n,i,j); each kernel tap
 *   (a,b) is then a shift d = u*Wp + v of the flat index inside phase (a mod s, b mod s), so
 *   R[:,:,a,b] = one GEMM small[Cs,M] x phase[Cb, d:d+M]^T with K = M = B*Hp*Wp large. The
 *   padding of the grid keeps shifted rows from wrapping into the next image. Fewer, fatter
 *   GEMMs, but the padded grid adds FLOPs and the data movement (Pad, SpaceToDepth, Transpose,
 *   9 slices) is slow in onnxruntime, so it is slower per step (docs/performance.md).
 */
export type FilterGradMethod = "shift-gemm" | "dilated-conv";

function filterGradDilatedConv(g: RecordingBuilder, small: string, ss: number[], big: string, bs: number[], k: number[], s: number[], p: number[]): string {
  const i64 = (base: string, v: number[]) => g.int64Init(base, v);
  const bt = g.op("Transpose", "bwd/bigT", [big], { perm: [1, 0, 2, 3] });
  const st = g.op("Transpose", "bwd/smallT", [small], { perm: [1, 0, 2, 3] });
  let r = g.op("Conv", "bwd/dw_dilated", [bt, st], { kernel_shape: ss.slice(2), strides: [1, 1], pads: p, dilations: s, group: 1 });
  const rs = [0, 1].map((j) => bs[2 + j] + p[j] + p[j + 2] - (ss[2 + j] - 1) * s[j]);
  if (rs[0] < k[0] || rs[1] < k[1]) throw new Error(`ort engine: internal error: filter gradient ${rs} smaller than kernel ${k}`);
  if (rs[0] !== k[0] || rs[1] !== k[1]) r = g.op("Slice", "bwd/dw_slice", [r, i64("starts", [0, 0]), i64("ends", k), i64("axes", [2, 3])]);
  return g.op("Transpose", "bwd/dw_T", [r], { perm: [1, 0, 2, 3] });
}

function filterGradShiftGemm(g: RecordingBuilder, small: string, ss: number[], big: string, bs: number[], k: number[], s: number[], p: number[]): string {
  const i64 = (base: string, v: number[]) => g.int64Init(base, v);
  const [B, Cs, hs, ws] = ss;
  const Cb = bs[1];
  const umax = [0, 1].map((j) => Math.floor((k[j] - 1) / s[j]));
  const Hp = hs + umax[0], Wp = ws + umax[1];
  const M = B * Hp * Wp;
  const dmax = umax[0] * Wp + umax[1];
  // big -> bigpad with exactly s*Hp x s*Wp rows/columns (crop first if it is larger).
  let bg = big;
  const need = [s[0] * Hp - p[0], s[1] * Wp - p[1]];
  if (need[0] < bs[2] || need[1] < bs[3]) {
    bg = g.op("Slice", "bwd/big_crop", [bg, i64("starts", [0, 0]), i64("ends", [Math.min(need[0], bs[2]), Math.min(need[1], bs[3])]), i64("axes", [2, 3])]);
  }
  const after = [need[0] - Math.min(need[0], bs[2]), need[1] - Math.min(need[1], bs[3])];
  if (p[0] || p[1] || after[0] || after[1]) bg = g.op("Pad", "bwd/big_pad", [bg, i64("pads", [0, 0, p[0], p[1], 0, 0, after[0], after[1]])]);
  // [B,Cb,Hp*s,Wp*s] -> SpaceToDepth [B,(r*s+q)*Cb+cb,Hp,Wp] -> [s*s*Cb,B,Hp,Wp] -> [s*s,Cb,M].
  // SpaceToDepth, not the equivalent 6-D Transpose, which is much slower in onnxruntime.
  if (s[0] !== 1 || s[1] !== 1) {
    if (s[0] !== s[1]) throw new Error(`ort engine: unequal strides ${s} are not supported`);
    bg = g.op("SpaceToDepth", "bwd/big_phases", [bg], { blocksize: s[0] });
  }
  bg = g.op("Transpose", "bwd/big_T", [bg], { perm: [1, 0, 2, 3] });
  bg = g.op("Reshape", "bwd/big_flat", [bg, i64("shape", [s[0] * s[1], Cb, M])]);
  // small [B,Cs,hs,ws] -> pad to [B,Cs,Hp,Wp] -> [Cs,B,Hp,Wp] -> [Cs,M] -> first K = M - dmax
  // columns (the dropped tail is grid padding, zero), so every shifted tap [d, d+K) fits in M.
  const K = M - dmax;
  let sm = small;
  if (umax[0] || umax[1]) sm = g.op("Pad", "bwd/small_pad", [sm, i64("pads", [0, 0, 0, 0, 0, 0, umax[0], umax[1]])]);
  sm = g.op("Transpose", "bwd/small_T", [sm], { perm: [1, 0, 2, 3] });
  sm = g.op("Reshape", "bwd/small_flat", [sm, i64("shape", [Cs, M])]);
  if (dmax > 0) sm = g.op("Slice", "bwd/small_head", [sm, i64("starts", [0]), i64("ends", [K]), i64("axes", [1])]);
  const taps: string[] = [];
  for (let a = 0; a < k[0]; a++) {
    for (let b = 0; b < k[1]; b++) {
      const ph = (a % s[0]) * s[1] + (b % s[1]);
      const d = Math.floor(a / s[0]) * Wp + Math.floor(b / s[1]);
      const sl = g.op("Slice", "bwd/tap", [bg, i64("starts", [ph, d]), i64("ends", [ph + 1, d + K]), i64("axes", [0, 2])]);
      const gb = g.op("Reshape", "bwd/tap_r", [sl, i64("shape", [Cb, K])]);
      const r = g.op("Gemm", "bwd/tap_gemm", [sm, gb], { transB: 1 });
      taps.push(g.op("Reshape", "bwd/tap_col", [r, i64("shape", [Cs, Cb, 1])]));
    }
  }
  const cat = g.op("Concat", "bwd/taps", taps, { axis: 2 });
  return g.op("Reshape", "bwd/dw", [cat, i64("shape", [Cs, Cb, k[0], k[1]])]);
}

export interface TrainingGraphSpec {
  encoder: tf.Sequential;
  decoder: tf.Sequential;
  head: tf.Sequential | null;
  latent: number;
  /** Fixed batch size of the graph. */
  batch: number;
  /**
   * "grads": output the flat gradient (TRAIN_IO.grads). "adam": also take Adam's slots and
   * apply tfjs's Adam update in the graph, outputting the new params and slots instead.
   */
  mode?: "grads" | "adam";
  /** How filter gradients are computed (see FilterGradMethod). */
  filterGrad?: FilterGradMethod;
  /** Adam's beta1, beta2, epsilon (adam mode); tf.train.adam's defaults. */
  adam?: { beta1: number; beta2: number; epsilon: number };
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

/** Builds the forward + backward graph of one training step (see the file comment). */
export function buildTrainingGraph(spec: TrainingGraphSpec): TrainingGraph {
  const { encoder, decoder, head, latent: L, batch: B } = spec;
  const fg = spec.filterGrad ?? "dilated-conv";
  const models: Record<string, tf.Sequential> = { encoder, decoder, ...(head ? { head } : {}) };
  for (const m of Object.values(models)) checkTrainable(m);
  const { slots, total } = weightSlots(models);
  const g = new RecordingBuilder("vae_training_step");
  const shapes: Shapes = new Map();
  const size = 28;
  const P = size * size;

  const x = g.input(TRAIN_IO.x, [B, 1, size, size]);
  const eps = g.input(TRAIN_IO.eps, [B, L]);
  shapes.set(x, [B, 1, size, size]);

  const forward = (m: tf.Sequential, input: Value) => forwardLayers(g, probeLayers(m, slots), input, shapes);

  // ---- forward
  const enc = forward(encoder, { name: x, shape: [size, size, 1] });
  if (JSON.stringify(enc.out.shape) !== JSON.stringify([2 * L])) throw new Error(`ort engine: encoder outputs ${JSON.stringify(enc.out.shape)}, expected [${2 * L}]`);
  const h = enc.out.name;
  const slice = (t: string, a: number, b: number, name: string) => g.op("Slice", name, [t, g.int64Init("s", [a]), g.int64Init("e", [b]), g.int64Init("ax", [1])]);
  const mu = slice(h, 0, L, "mu");
  const logvar = slice(h, L, 2 * L, "logvar");
  const std = g.op("Exp", "std", [g.op("Mul", "half_logvar", [logvar, g.scalar("c_half", 0.5)])]);
  const z = g.op("Add", "z", [mu, g.op("Mul", "std_eps", [std, eps])]);
  shapes.set(z, [B, L]);
  const dec = forward(decoder, { name: z, shape: [L] });
  if (JSON.stringify(dec.out.shape) !== JSON.stringify([size, size, 1])) throw new Error(`ort engine: decoder outputs ${JSON.stringify(dec.out.shape)}, expected [28,28,1]`);
  const logits4 = dec.out.name;
  const flat = g.int64Init("flat", [-1, P]);
  const l = g.op("Reshape", "logits_flat", [logits4, flat]);
  const xf = g.op("Reshape", "x_flat", [x, flat]);
  const invB = g.scalar("inv_batch", 1 / B);
  // bce = relu(l) - l*x + softplus(-|l|), summed over pixels and batch, / B.
  const bce = g.op("Add", "bce", [
    g.op("Sub", "bce_a", [g.op("Relu", "bce_relu", [l]), g.op("Mul", "bce_lx", [l, xf])]),
    g.op("Softplus", "bce_sp", [g.op("Neg", "bce_neg", [g.op("Abs", "bce_abs", [l])])]),
  ]);
  const rec = g.op("Mul", "rec_mean", [g.op("ReduceSum", "rec_sum", [bce], { keepdims: 0 }), invB], {}, TRAIN_IO.rec);
  const ev = g.op("Exp", "exp_logvar", [logvar]);
  const klTerm = g.op("Sub", "kl_b", [g.op("Sub", "kl_a", [g.op("Add", "kl_1", [logvar, g.scalar("c_one", 1)]), g.op("Mul", "mu2", [mu, mu])]), ev]);
  const kl = g.op("Mul", "kl_mean", [g.op("ReduceSum", "kl_sum", [klTerm], { keepdims: 0 }), g.scalar("c_kl", -0.5 / B)], {}, TRAIN_IO.kl);
  const elbo = g.op("Add", "neg_elbo", [rec, kl]);

  let hd: { out: Value; tape: TapeNode[] } | null = null;
  let hl = "", onehot = "", cw = "", numClasses = 0;
  if (head) {
    onehot = g.input(TRAIN_IO.labels, [B, head.outputShape[1] as number]);
    cw = g.input(TRAIN_IO.classWeight, []);
    shapes.set(mu, [B, L]);
    hd = forward(head, { name: mu, shape: [L] });
    hl = hd.out.name;
    numClasses = hd.out.shape[0];
    const lsm = g.op("LogSoftmax", "head_logsoftmax", [hl], { axis: -1 });
    const ce = g.op("Mul", "ce_mean", [g.op("ReduceSum", "ce_sum", [g.op("Mul", "ce_y", [onehot, lsm])], { keepdims: 0 }), g.scalar("c_ce", -1 / B)], {}, TRAIN_IO.ce);
    g.op("Add", "total", [elbo, g.op("Mul", "ce_w", [ce, cw])], {}, TRAIN_IO.loss);
    const hit = g.op("Equal", "hit", [g.op("ArgMax", "pred", [hl], { axis: 1, keepdims: 0 }), g.op("ArgMax", "truth", [onehot], { axis: 1, keepdims: 0 })]);
    g.op("ReduceSum", "correct_sum", [g.op("Cast", "hit_f", [hit], { to: 1 })], { keepdims: 0 }, TRAIN_IO.correct);
  } else {
    g.op("Identity", "total", [elbo], {}, TRAIN_IO.loss);
  }

  // ---- backward
  // d total / d logits = (sigmoid(l) - x) / B, back in the decoder's NCHW output shape.
  const dl = g.op("Mul", "d_logits", [g.op("Sub", "d_logits_a", [g.op("Sigmoid", "sig", [l]), xf]), invB]);
  const dl4 = g.op("Reshape", "d_logits4", [dl, g.int64Init("logits_shape", [-1, 1, size, size])]);
  const gDec = backward(g, dec.tape, shapes, new Map([[logits4, dl4]]), new Set(), fg);
  const dz = gDec.get(z);
  if (!dz) throw new Error("ort engine: internal error: no gradient reached the decoder input");
  // dmu = dz + mu/B (KL); dlogvar = dz*eps*std/2 + (exp(logvar) - 1)/(2B).
  let dmu = g.op("Add", "d_mu", [dz, g.op("Mul", "d_kl_mu", [mu, invB])]);
  const dlogvar = g.op("Add", "d_logvar", [
    g.op("Mul", "d_lv_a", [g.op("Mul", "d_lv_dz_eps", [dz, eps]), g.op("Mul", "d_lv_std", [std, g.scalar("c_half2", 0.5)])]),
    g.op("Mul", "d_lv_kl", [g.op("Sub", "d_lv_ev", [ev, g.scalar("c_one2", 1)]), g.scalar("c_half_b", 0.5 / B)]),
  ]);
  let gHead = new Map<string, string>();
  if (hd) {
    // d total / d head logits = w * (softmax - onehot) / B.
    const dhl = g.op("Mul", "d_head_logits", [
      g.op("Sub", "d_hl_a", [g.op("Softmax", "head_softmax", [hl], { axis: -1 }), onehot]),
      g.op("Mul", "cw_over_b", [cw, invB]),
    ]);
    gHead = backward(g, hd.tape, shapes, new Map([[hl, dhl]]), new Set(), fg);
    const dmuHead = gHead.get(mu);
    if (dmuHead) dmu = g.op("Add", "d_mu_head", [dmu, dmuHead]);
  }
  const dh = g.op("Concat", "d_moments", [dmu, dlogvar], { axis: 1 });
  const gEnc = backward(g, enc.tape, shapes, new Map([[h, dh]]), new Set([x]), fg);

  const all = new Map([...gEnc, ...gDec, ...gHead]);
  const outputs = [TRAIN_IO.loss, TRAIN_IO.rec, TRAIN_IO.kl, ...(head ? [TRAIN_IO.ce, TRAIN_IO.correct] : [])];
  const fin = finishGraph(g, all, spec, outputs, total);
  return {
    bytes: g.encode(`latent-edge VAE training step (forward + backward), batch ${B}, latent ${L}`),
    params: g.params,
    size: fin.size,
    mode: fin.mode,
    slots,
    totalWeights: total,
    numClasses,
    hasHead: head != null,
    kind: "vae",
    dropout: null,
  };
}

/** Runs the exporter over layers with parameters as inputs; returns the output and its tape segment. */
function forwardLayers(g: RecordingBuilder, layers: tf.layers.Layer[], input: Value, shapes: Shapes): { out: Value; tape: TapeNode[] } {
  const start = g.tape.length;
  const firstParam = g.params.length;
  g.paramMode = true;
  const out = convertLayers(g, layers, input);
  g.paramMode = false;
  for (const p of g.params.slice(firstParam)) shapes.set(p.name, p.dims);
  const tape = g.tape.slice(start);
  inferShapes(g, tape, shapes);
  return { out, tape };
}

/**
 * The common end of a training graph: the flat gradient (grads mode) or tfjs's Adam update on
 * it (adam mode), the scalar outputs, and the check that parameters and tfjs weights are a
 * bijection.
 */
function finishGraph(g: RecordingBuilder, grads: Map<string, string>, spec: { mode?: "grads" | "adam"; adam?: { beta1: number; beta2: number; epsilon: number } }, scalars: string[], total: number): { size: number; mode: "grads" | "adam" } {
  const flatGrads = g.params.map((p) => {
    const gr = grads.get(p.name);
    if (!gr) throw new Error(`ort engine: parameter ${p.name} gets no gradient`);
    return g.op("Reshape", `grad_flat/${p.name}`, [gr, g.int64Init("minus1", [-1])]);
  });
  const N = g.params.reduce((a, p) => a + p.src.length, 0);
  g.lateInput(TRAIN_IO.params, [N]);
  const mode = spec.mode ?? "grads";
  if (mode === "grads") {
    g.op("Concat", "grads", flatGrads, { axis: 0 }, TRAIN_IO.grads);
    g.output(TRAIN_IO.grads, [N]);
  } else {
    // tfjs AdamOptimizer.applyGradients, op by op in float32 (see ort_train.ts applyAdam).
    const { beta1, beta2, epsilon } = spec.adam ?? { beta1: 0.9, beta2: 0.999, epsilon: 1e-7 };
    const grad = g.op("Concat", "grads", flatGrads, { axis: 0 });
    const m = g.input(TRAIN_IO.adamM, [N]), v = g.input(TRAIN_IO.adamV, [N]);
    const sc = g.input(TRAIN_IO.adamScalars, [3]);
    const pick = (i: number, name: string) => g.op("Slice", name, [sc, g.int64Init("s", [i]), g.int64Init("e", [i + 1])]);
    const d1 = pick(0, "adam_d1"), d2 = pick(1, "adam_d2"), nlr = pick(2, "adam_nlr");
    const m2 = g.op("Add", "adam_m", [g.op("Mul", "adam_m_b1", [m, g.scalar("b1", beta1)]), g.op("Mul", "adam_g_c1", [grad, g.scalar("c1", 1 - beta1)])], {}, TRAIN_IO.adamMOut);
    const g2 = g.op("Mul", "adam_g2", [grad, grad]);
    const v2 = g.op("Add", "adam_v", [g.op("Mul", "adam_v_b2", [v, g.scalar("b2", beta2)]), g.op("Mul", "adam_g2_c2", [g2, g.scalar("c2", 1 - beta2)])], {}, TRAIN_IO.adamVOut);
    const mhat = g.op("Div", "adam_mhat", [m2, d1]);
    const den = g.op("Add", "adam_den", [g.op("Sqrt", "adam_sqrt", [g.op("Div", "adam_vhat", [v2, d2])]), g.scalar("eps", epsilon)]);
    const upd = g.op("Mul", "adam_step", [g.op("Div", "adam_ratio", [mhat, den]), nlr]);
    g.op("Add", "adam_p", [upd, TRAIN_IO.params], {}, TRAIN_IO.paramsOut);
    for (const o of [TRAIN_IO.paramsOut, TRAIN_IO.adamMOut, TRAIN_IO.adamVOut]) g.output(o, [N]);
  }
  for (const o of scalars) g.output(o, [] as OnnxDim[]);

  // Every tfjs weight element must be exactly one parameter element (layouts are a bijection).
  const seen = new Uint8Array(total);
  for (const p of g.params) for (const s of p.src) seen[s]++;
  const bad = seen.findIndex((c) => c !== 1);
  if (bad >= 0) throw new Error(`ort engine: internal error: tfjs weight element ${bad} is used ${seen[bad]} times by the graph`);

  return { size: N, mode };
}

export interface ClassifierGraphSpec {
  /** A pixel classifier: [28,28,1] in, logits out; at most one Dropout (its mask becomes an input). */
  model: tf.Sequential;
  batch: number;
  mode?: "grads" | "adam";
  filterGrad?: FilterGradMethod;
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
  const fg = spec.filterGrad ?? "dilated-conv";
  const { slots, total } = weightSlots({ classifier: model });
  const g = new RecordingBuilder("classifier_training_step");
  const shapes: Shapes = new Map();
  const x = g.input(TRAIN_IO.x, [B, 1, 28, 28]);
  shapes.set(x, [B, 1, 28, 28]);
  const layers = probeLayers(model, slots);
  const drops = model.layers.map((l, i) => ({ l, i })).filter((e) => e.l.getClassName() === "Dropout" && Number((e.l.getConfig() as { rate?: number }).rate) > 0);
  if (drops.length > 1) throw new Error(`ort engine: ${model.name} has ${drops.length} dropout layers; at most one is supported`);
  const cut = drops.length ? drops[0].i : layers.length;
  const tape: TapeNode[] = [];
  let v: Value = { name: x, shape: [28, 28, 1] };
  const first = forwardLayers(g, layers.slice(0, cut), v, shapes);
  tape.push(...first.tape);
  v = first.out;
  let dropout: TrainingGraph["dropout"] = null;
  const noGrad = new Set([x]);
  if (drops.length) {
    if (v.shape.length !== 1) throw new Error(`ort engine: dropout ${drops[0].l.name} follows a ${JSON.stringify(v.shape)} tensor; only dropout on dense features is supported`);
    const mask = g.input(TRAIN_IO.dropoutMask, [B, v.shape[0]]);
    shapes.set(mask, [B, v.shape[0]]);
    noGrad.add(mask);
    const start = g.tape.length;
    const y = g.op("Mul", "dropout", [v.name, mask]);
    shapes.set(y, [B, v.shape[0]]);
    tape.push(...g.tape.slice(start));
    dropout = { units: v.shape[0], rate: Number((drops[0].l.getConfig() as { rate?: number }).rate) };
    const rest = forwardLayers(g, layers.slice(cut + 1), { name: y, shape: v.shape }, shapes);
    tape.push(...rest.tape);
    v = rest.out;
  }
  if (v.shape.length !== 1) throw new Error(`ort engine: ${model.name} outputs ${JSON.stringify(v.shape)}, expected class logits`);
  const K = v.shape[0];
  const logits = v.name;
  const onehot = g.input(TRAIN_IO.labels, [B, K]);
  const lsm = g.op("LogSoftmax", "logsoftmax", [logits], { axis: -1 });
  g.op("Mul", "ce_mean", [g.op("ReduceSum", "ce_sum", [g.op("Mul", "ce_y", [onehot, lsm])], { keepdims: 0 }), g.scalar("c_ce", -1 / B)], {}, TRAIN_IO.loss);
  const hit = g.op("Equal", "hit", [g.op("ArgMax", "pred", [logits], { axis: 1, keepdims: 0 }), g.op("ArgMax", "truth", [onehot], { axis: 1, keepdims: 0 })]);
  g.op("ReduceSum", "correct_sum", [g.op("Cast", "hit_f", [hit], { to: 1 })], { keepdims: 0 }, TRAIN_IO.correct);
  // d loss / d logits = (softmax - onehot) / B.
  const dl = g.op("Mul", "d_logits", [g.op("Sub", "d_logits_a", [g.op("Softmax", "softmax", [logits], { axis: -1 }), onehot]), g.scalar("inv_batch", 1 / B)]);
  const grads = backward(g, tape, shapes, new Map([[logits, dl]]), noGrad, fg);
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
    dropout,
  };
}
