/**
 * The forward half of a training graph: a recording GraphBuilder that turns the exporter's
 * weight initializers into slices of one flat parameter input and keeps a tape of the forward
 * nodes, the index probes that map ONNX layouts back to tfjs weights, and static shape
 * inference over the tape for the backward rules.
 */
import type * as tf from "@tensorflow/tfjs";
import { convertLayers, type Value } from "../../export/_layers.ts";
import { type AddedNode, type AttrValue, GraphBuilder, type OnnxDim } from "../../export/_proto.ts";
import { type ParamInput, TRAIN_IO, type WeightSlot } from "./io.ts";

export type { ParamInput, WeightSlot };

export type TapeNode = AddedNode;

/**
 * A GraphBuilder that, while `paramMode` is on, turns each float initializer into a parameter
 * (a slice of the flat `params` input) and records its probe values; it also records every node
 * (the tape) and int64 constants (for shape inference of Reshape).
 */
export class RecordingBuilder extends GraphBuilder {
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
    const flat = this.op("Slice", `${base}/slice`, [
      TRAIN_IO.params,
      this.int64Init(`${base}.start`, [offset]),
      this.int64Init(`${base}.end`, [offset + size]),
    ]);
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

  protected override added(node: TapeNode): void {
    if (!this.quiet) this.tape.push(node);
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
const SUPPORTED = new Set([
  "Conv2D",
  "Conv2DTranspose",
  "Dense",
  "Flatten",
  "Reshape",
  "Dropout",
  "Activation",
  "InputLayer",
]);

export function checkTrainable(model: tf.Sequential, allowDropout = false): void {
  for (const layer of model.layers) {
    const kind = layer.getClassName();
    if (!SUPPORTED.has(kind)) {
      throw new Error(`ort engine: layer ${layer.name} of type ${kind} is not supported`);
    }
    const cfg = layer.getConfig() as Record<string, unknown>;
    if (kind === "Dropout" && Number(cfg.rate) > 0 && !allowDropout) {
      throw new Error(
        `ort engine: layer ${layer.name} is a dropout of rate ${cfg.rate}; training with dropout is not supported (use the tfjs engine)`,
      );
    }
    const act = String(cfg.activation ?? "linear");
    if (act !== "linear" && act !== "relu") {
      throw new Error(
        `ort engine: layer ${layer.name} uses activation ${act}; only relu and linear are supported`,
      );
    }
  }
}

/** Lists the tfjs weights of the models in order and gives each its global offset. */
export function weightSlots(
  models: Record<string, tf.Sequential>,
): { slots: WeightSlot[]; total: number } {
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
  if (offset >= 1 << 24) {
    throw new Error(`ort engine: ${offset} weights is too many for float32 index probes`);
  }
  return { slots, total: offset };
}

/**
 * The layers of `model` with getWeights() replaced by probes: weight k of a layer holds the
 * values offset..offset+size-1 (exact in float32 below 2^24), so what the exporter writes is
 * the index map from the ONNX layout to the tfjs one. Everything else reads the real layer.
 */
export function probeLayers(model: tf.Sequential, slots: WeightSlot[]): tf.layers.Layer[] {
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

export type Shapes = Map<string, number[]>;

/**
 * The common start of a training step graph: the models checked, their weights laid out as one
 * flat parameter vector, a recording builder, and each model's layers as probes of their slots.
 */
export function startStepGraph(
  name: string,
  models: Record<string, tf.Sequential>,
  allowDropout = false,
) {
  for (const m of Object.values(models)) checkTrainable(m, allowDropout);
  const { slots, total } = weightSlots(models);
  const shapes: Shapes = new Map();
  const layersOf = (m: tf.Sequential) => probeLayers(m, slots);
  return { g: new RecordingBuilder(name), shapes, slots, total, layersOf };
}

export const prod = (a: number[]) => a.reduce((x, y) => x * y, 1);

export function ints(a: AttrValue | undefined, fallback: number[]): number[] {
  return Array.isArray(a) ? a : fallback;
}

/** Static shape inference over the tape (batch fixed), for the ops the exporter emits. */
export function inferShapes(g: RecordingBuilder, nodes: TapeNode[], shapes: Shapes): void {
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
        if ((n.attrs.group ?? 1) !== 1) {
          throw new Error("ort engine: grouped convolutions are not supported");
        }
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

/** Runs the exporter over layers with parameters as inputs; returns the output and its tape segment. */
export function forwardLayers(
  g: RecordingBuilder,
  layers: tf.layers.Layer[],
  input: Value,
  shapes: Shapes,
): { out: Value; tape: TapeNode[] } {
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
