/**
 * A small builder over the onnx-proto protobuf classes: collects nodes, float/int64
 * initializers and typed graph inputs/outputs, then serialises one standard ONNX model
 * (default domain only, opset ONNX_OPSET, IR version ONNX_IR_VERSION). It knows nothing about
 * tfjs; trainer/export/_layers.ts decides which nodes to emit.
 */
import pkg from "onnx-proto";

const { onnx } = pkg;

/** Opset 13: Softmax is per-axis (not "flatten to 2-D"), Split/Slice take tensor inputs. */
export const ONNX_OPSET = 13;
/** IR 7 is the version that introduced opset 13 (ONNX 1.8); every current runtime reads it. */
export const ONNX_IR_VERSION = 7;

/** A graph tensor dimension: a fixed size or a symbolic name such as "N" (dynamic batch). */
export type OnnxDim = number | string;

/** Integer, integer list, string, or `{ float }` (a float attribute must be explicit: 1.0 is an integer in JS). */
export type AttrValue = number | number[] | string | { float: number };

/** A node as appended: its op, inputs, attributes and output names. */
export interface AddedNode {
  op: string;
  inputs: string[];
  attrs: Record<string, AttrValue>;
  outputs: string[];
}

export class GraphBuilder {
  private nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  private inits: InstanceType<typeof onnx.TensorProto>[] = [];
  private inputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private used = new Set<string>();

  constructor(readonly graphName: string) {}

  /** A tensor name not used yet in this graph, derived from `base`. */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  /** Reserves an exact name (graph inputs/outputs); a clash is a bug in the exporter. */
  reserve(name: string): string {
    if (this.used.has(name)) {
      throw new Error(
        `ONNX export: tensor name "${name}" is already used in graph ${this.graphName}`,
      );
    }
    this.used.add(name);
    return name;
  }

  input(name: string, shape: OnnxDim[]): string {
    this.inputs.push(valueInfo(this.reserve(name), shape));
    return name;
  }

  /** Declares `name` (already produced by a node) as a graph output of the given shape. */
  output(name: string, shape: OnnxDim[]): void {
    this.outputs.push(valueInfo(name, shape));
  }

  /** float32 initializer, stored as little-endian raw_data. */
  floatInit(base: string, dims: number[], values: Float32Array): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (values.length !== count) {
      throw new Error(
        `ONNX export: initializer ${base} has ${values.length} values, shape ${
          JSON.stringify(dims)
        } needs ${count}`,
      );
    }
    const name = this.unique(base);
    const raw = new Uint8Array(count * 4);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < count; i++) view.setFloat32(i * 4, values[i], true);
    this.inits.push(
      onnx.TensorProto.create({
        name,
        dims,
        dataType: onnx.TensorProto.DataType.FLOAT,
        rawData: raw,
      }),
    );
    return name;
  }

  /** int64 initializer (shapes for Reshape, starts/ends for Slice, splits for Split). */
  int64Init(base: string, values: number[]): string {
    const name = this.unique(base);
    const raw = new Uint8Array(values.length * 8);
    const view = new DataView(raw.buffer);
    values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
    this.inits.push(
      onnx.TensorProto.create({
        name,
        dims: [values.length],
        dataType: onnx.TensorProto.DataType.INT64,
        rawData: raw,
      }),
    );
    return name;
  }

  /**
   * Appends a node and returns its output names. `outputs` are exact names when given (graph
   * outputs), otherwise fresh names derived from the node name.
   */
  node(
    op: string,
    name: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    outputs?: string[],
  ): string[] {
    const outs = outputs?.map((o) => this.reserve(o)) ?? [this.unique(`${name}_out`)];
    const attribute = Object.entries(attrs).map(([k, v]) => attribute_(k, v));
    this.nodes.push(
      onnx.NodeProto.create({
        opType: op,
        name: this.unique(name),
        input: inputs,
        output: outs,
        attribute,
      }),
    );
    this.added({ op, inputs, attrs, outputs: outs });
    return outs;
  }

  /** Called with every node appended; a subclass records them (the training graph's tape). */
  protected added(_node: AddedNode): void {}

  /** One output node helper: returns the single output name. */
  op(
    op: string,
    name: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    output?: string,
  ): string {
    return this.node(op, name, inputs, attrs, output ? [output] : undefined)[0];
  }

  /** Serialises the model. `doc` ends up in the model's doc_string (shown by Netron etc.). */
  encode(doc: string): Uint8Array {
    const graph = onnx.GraphProto.create({
      name: this.graphName,
      node: this.nodes,
      initializer: this.inits,
      input: this.inputs,
      output: this.outputs,
    });
    const model = onnx.ModelProto.create({
      irVersion: ONNX_IR_VERSION,
      producerName: "latent-edge",
      producerVersion: "1",
      docString: doc,
      opsetImport: [onnx.OperatorSetIdProto.create({ domain: "", version: ONNX_OPSET })],
      graph,
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, shape: OnnxDim[]) {
  const dim = shape.map((d) => typeof d === "number" ? { dimValue: d } : { dimParam: d });
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim } } },
  });
}

function attribute_(name: string, v: AttrValue) {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === "string") {
    return onnx.AttributeProto.create({ name, type: T.STRING, s: new TextEncoder().encode(v) });
  }
  if (Array.isArray(v)) {
    if (!v.every(Number.isInteger)) {
      throw new Error(
        `ONNX export: attribute ${name} must hold integers, got ${JSON.stringify(v)}`,
      );
    }
    return onnx.AttributeProto.create({ name, type: T.INTS, ints: v });
  }
  if (typeof v === "object") return onnx.AttributeProto.create({ name, type: T.FLOAT, f: v.float });
  if (!Number.isInteger(v)) {
    throw new Error(
      `ONNX export: attribute ${name} must be an integer (wrap floats as {float}), got ${v}`,
    );
  }
  return onnx.AttributeProto.create({ name, type: T.INT, i: v });
}
