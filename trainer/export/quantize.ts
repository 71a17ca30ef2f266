/**
 * Static int8 quantization of an exported fp32 serving graph, as an ONNX-to-ONNX rewrite in
 * QDQ form: QuantizeLinear/DequantizeLinear pairs around every quantized Conv and Gemm, with
 * per-output-channel symmetric int8 weights, int32 biases and per-tensor uint8 activations whose
 * ranges come from calibration (calibrationGraph exposes the tensors to measure). onnxruntime
 * (node and web) fuses each DQ -> Conv/Gemm -> Q group into QLinearConv / QGemm kernels.
 *
 * What is quantized: the feature extractor, i.e. every Conv/Gemm with initializer weights that
 * neither produces a graph output nor depends on one. The latent moments (mu, logvar) and a
 * head on mu stay fp32: they are a tiny share of the work, and mu is part of the API.
 * A Relu after a quantized op is dropped: a uint8 Q with zero point 0 clamps at 0 by itself.
 * A Flatten or Reshape between quantized ops gets its own Q/DQ pair (same scale), so the op
 * before it still ends in a Q and fuses.
 */
import pkg from "onnx-proto";

const { onnx } = pkg;
type TensorProto = InstanceType<typeof onnx.TensorProto>;
/** A decoded node: protobufjs fills every repeated and string field, whatever its typings say. */
interface NodeProto {
  opType: string;
  name: string;
  input: string[];
  output: string[];
  attribute: { name: string; i?: number | Long; f?: number }[];
}
type Long = { low: number; high: number };
interface GraphProto {
  node: NodeProto[];
  initializer: TensorProto[];
  input: { name: string }[];
  output: { name: string }[];
}

function decode(bytes: Uint8Array) {
  const model = onnx.ModelProto.decode(bytes);
  return { model, g: model.graph as unknown as GraphProto };
}

const DT = onnx.TensorProto.DataType;

/** Observed value range of one activation tensor on the calibration images. */
export interface Range {
  min: number;
  max: number;
}

/** Per-tensor uint8 quantization parameters: x = (q - zeroPoint) * scale. */
export interface QParams {
  scale: number;
  zeroPoint: number;
}

export interface QuantizeOptions {
  /** Range of each graph input (the serving image is in [0, 1]). */
  inputRanges: Record<string, Range>;
  /** Calibrated ranges of the tensors calibrationGraph() names. */
  ranges: Record<string, Range>;
}

/** uint8 parameters covering `r` (widened to contain 0, so zero is exact and padding is 0). */
export function uint8Params(r: Range): QParams {
  const lo = Math.min(0, r.min), hi = Math.max(0, r.max);
  if (!(hi > lo)) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((hi - lo) / 255);
  return { scale, zeroPoint: Math.min(255, Math.max(0, Math.round(-lo / scale))) };
}

/** Round half to even, as QuantizeLinear does. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function floatsOf(t: TensorProto): Float32Array {
  if (t.dataType !== DT.FLOAT) throw new Error(`Quantize: initializer ${t.name} is not float32`);
  if (t.rawData && t.rawData.length) {
    const raw = t.rawData;
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
  }
  return Float32Array.from(t.floatData ?? []);
}

function dimsOf(t: TensorProto): number[] {
  return (t.dims ?? []).map(Number);
}

function tensor(name: string, dataType: number, dims: number[], raw: Uint8Array): TensorProto {
  return onnx.TensorProto.create({ name, dataType, dims, rawData: raw });
}

function floatTensor(name: string, values: Float32Array | number[], dims: number[]): TensorProto {
  return tensor(name, DT.FLOAT, dims, new Uint8Array(Float32Array.from(values).buffer));
}

/** The op's nodes as the rewrite sees them: Conv or Gemm with initializer weight and bias. */
interface Target {
  node: NodeProto;
  /** Output channel axis of the weight: 0 for Conv [M,C,kh,kw], 1 for Gemm [K,N] (transB=0). */
  axis: number;
}

function attrInt(n: NodeProto, name: string, dflt: number): number {
  const a = n.attribute.find((x) => x.name === name);
  return a?.i === undefined ? dflt : typeof a.i === "number" ? a.i : a.i.low;
}

function isTarget(n: NodeProto, inits: Map<string, TensorProto>): Target | null {
  if (n.input.length < 2 || !inits.has(n.input[1])) return null;
  if (n.input.length > 2 && !inits.has(n.input[2])) return null;
  if (n.opType === "Conv") return attrInt(n, "group", 1) === 1 ? { node: n, axis: 0 } : null;
  if (n.opType !== "Gemm") return null;
  const plain = attrInt(n, "transA", 0) === 0 && attrInt(n, "transB", 0) === 0 &&
    !n.attribute.some((a) => (a.name === "alpha" || a.name === "beta") && a.f !== 1);
  return plain ? { node: n, axis: 1 } : null;
}

/** Tensors computed from a graph output (they and their producers stay fp32). */
function downstreamOfOutputs(g: GraphProto): Set<string> {
  const tainted = new Set(g.output.map((o) => o.name));
  for (const n of g.node) {
    if (n.input.some((i) => tainted.has(i))) n.output.forEach((o) => tainted.add(o));
  }
  return tainted;
}

interface Plan {
  targets: Target[];
  /** Target node name -> the tensor its quantized result is known by (Relu output if dropped). */
  resultOf: Map<string, string>;
  /** Relu nodes folded into the Q that follows their target. */
  dropped: Set<string>;
  /** Activation tensors whose range calibration must measure. */
  calibrate: string[];
}

function consumersOf(g: GraphProto): Map<string, NodeProto[]> {
  const m = new Map<string, NodeProto[]>();
  for (const n of g.node) {
    for (const i of n.input) m.set(i, [...(m.get(i) ?? []), n]);
  }
  return m;
}

function plan(g: GraphProto): Plan {
  const inits = new Map(g.initializer.map((t) => [t.name as string, t]));
  const tainted = downstreamOfOutputs(g);
  const consumers = consumersOf(g);
  const targets = g.node.map((n) => isTarget(n, inits)).filter((t): t is Target =>
    t !== null && !t.node.output.some((o) => tainted.has(o))
  );
  const resultOf = new Map<string, string>();
  const dropped = new Set<string>();
  const calibrate = new Set<string>();
  const graphInputs = new Set(g.input.map((i) => i.name));
  for (const { node } of targets) {
    const uses = consumers.get(node.output[0]) ?? [];
    const relu = uses.length === 1 && uses[0].opType === "Relu" ? uses[0] : null;
    if (relu) dropped.add(relu.name);
    const result = relu ? relu.output[0] : node.output[0];
    resultOf.set(node.name, result);
    calibrate.add(result);
  }
  const results = new Set(resultOf.values());
  for (const { node } of targets) {
    const x = node.input[0];
    if (!graphInputs.has(x) && !results.has(x) && !passThroughSource(g, x, results)) {
      calibrate.add(x);
    }
  }
  return { targets, resultOf, dropped, calibrate: [...calibrate] };
}

/** A Flatten/Reshape of a quantized result: returns that result (values pass through unchanged). */
function passThroughSource(g: GraphProto, x: string, results: Set<string>): string | null {
  const p = g.node.find((n) => n.output.includes(x));
  if (!p || (p.opType !== "Flatten" && p.opType !== "Reshape")) return null;
  return results.has(p.input[0]) ? p.input[0] : null;
}

/**
 * The fp32 graph with the activations that calibration must measure added as graph outputs.
 * Returns its bytes and those tensor names (their ranges go into QuantizeOptions.ranges).
 */
export function calibrationGraph(fp32: Uint8Array): { bytes: Uint8Array; tensors: string[] } {
  const { model, g } = decode(fp32);
  const { calibrate } = plan(g);
  const have = new Set(g.output.map((o) => o.name));
  for (const name of calibrate) {
    if (have.has(name)) continue;
    g.output.push(
      onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: DT.FLOAT } } }),
    );
  }
  return { bytes: onnx.ModelProto.encode(model).finish(), tensors: calibrate };
}

/**
 * Weights use 7 bits (-63..63), not 8: on x86 CPUs without VNNI, onnxruntime multiplies uint8
 * activations by int8 weights with VPMADDUBSW, which sums two products into a saturating int16;
 * 255 * 127 * 2 overflows it and the graph computes different numbers than on a VNNI CPU (the
 * probe recorded on one machine fails on the other). 255 * 63 * 2 cannot overflow, so every CPU
 * computes the same integers. onnxruntime's own quantizer calls this `reduce_range`.
 */
export const WEIGHT_QMAX = 63;

/** Per-channel symmetric weights: scale_c = max|w_c| / WEIGHT_QMAX. */
function quantizeWeights(w: Float32Array, dims: number[], axis: number) {
  const channels = dims[axis];
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const chan = (i: number) => Math.floor(i / inner) % channels;
  const maxAbs = new Float32Array(channels);
  w.forEach((v, i) => (maxAbs[chan(i)] = Math.max(maxAbs[chan(i)], Math.abs(v))));
  const scales = Float32Array.from(maxAbs, (m) => (m > 0 ? m / WEIGHT_QMAX : 1));
  const q = new Int8Array(w.length);
  w.forEach((
    v,
    i,
  ) => (q[i] = Math.max(-WEIGHT_QMAX, Math.min(WEIGHT_QMAX, roundEven(v / scales[chan(i)])))));
  return { q, scales };
}

/** Rewrites an fp32 serving graph (bytes) into its int8 QDQ form (bytes). */
export function quantizeGraph(fp32: Uint8Array, opts: QuantizeOptions): Uint8Array {
  const { model, g } = decode(fp32);
  const p = plan(g);
  const inits = new Map(g.initializer.map((t) => [t.name as string, t]));
  const replaced = new Set<string>();
  const added: TensorProto[] = [];
  const nodes: NodeProto[] = [];
  const push = (n: unknown) => nodes.push(n as NodeProto);
  const params = new Map<string, QParams>();
  const rangeOf = (t: string): Range => {
    const r = opts.inputRanges[t] ?? opts.ranges[t];
    if (!r || !Number.isFinite(r.min) || !Number.isFinite(r.max)) {
      throw new Error(`Quantize: no calibrated range for tensor "${t}"`);
    }
    return r;
  };
  // Activations already available in dequantized form: tensor -> its DQ output.
  const dequantized = new Map<string, string>();
  const node = (opType: string, name: string, input: string[], output: string[], axis?: number) =>
    push(onnx.NodeProto.create({
      opType,
      name,
      input,
      output,
      attribute: axis === undefined ? [] : [
        onnx.AttributeProto.create({
          name: "axis",
          type: onnx.AttributeProto.AttributeType.INT,
          i: axis,
        }),
      ],
    }));
  const qdq = (src: string, qp: QParams, out: string) => {
    added.push(floatTensor(`${out}.scale`, [qp.scale], []));
    added.push(tensor(`${out}.zero_point`, DT.UINT8, [], Uint8Array.of(qp.zeroPoint)));
    node("QuantizeLinear", `${out}/Q`, [src, `${out}.scale`, `${out}.zero_point`], [`${out}.q`]);
    node("DequantizeLinear", `${out}/DQ`, [`${out}.q`, `${out}.scale`, `${out}.zero_point`], [out]);
  };
  const results = new Set(p.resultOf.values());
  const targetOf = new Map(p.targets.map((t) => [t.node.name, t]));
  for (const n of g.node) {
    if (p.dropped.has(n.name)) continue;
    const t = targetOf.get(n.name);
    if (!t) {
      nodes.push(n);
      const src = n.opType === "Flatten" || n.opType === "Reshape" ? n.input[0] : null;
      if (src && results.has(src)) params.set(n.output[0], params.get(src)!);
      continue;
    }
    const x = n.input[0];
    let xq = dequantized.get(x);
    if (!xq) {
      const qp = params.get(x) ?? uint8Params(rangeOf(x));
      params.set(x, qp);
      xq = `${x}.dq`;
      qdq(x, qp, xq);
      dequantized.set(x, xq);
    }
    const inputs = [xq, ...quantizeParams(n, t, inits, params.get(x)!, added, node, replaced)];
    const result = p.resultOf.get(n.name)!;
    const raw = `${n.output[0]}.f`;
    push(onnx.NodeProto.create({ ...n, input: inputs, output: [raw] } as never));
    // A dropped Relu's clamp at 0 is the Q's zero point 0, so its range starts at 0.
    const r = rangeOf(result);
    const qp = uint8Params(result === n.output[0] ? r : { min: 0, max: r.max });
    params.set(result, qp);
    qdq(raw, qp, result);
    dequantized.set(result, result);
  }
  g.node = nodes;
  g.initializer = [...g.initializer.filter((i) => !replaced.has(i.name)), ...added];
  model.docString = `${
    model.docString ?? ""
  } (int8 QDQ: per-channel int8 weights, uint8 activations)`;
  return onnx.ModelProto.encode(model).finish();
}

/** Emits the DQ nodes of a target's weight and bias; returns the names the op reads. */
function quantizeParams(
  n: NodeProto,
  t: Target,
  inits: Map<string, TensorProto>,
  x: QParams,
  added: TensorProto[],
  node: (op: string, name: string, input: string[], output: string[], axis?: number) => void,
  replaced: Set<string>,
): string[] {
  const wInit = inits.get(n.input[1])!;
  const dims = dimsOf(wInit);
  const { q, scales } = quantizeWeights(floatsOf(wInit), dims, t.axis);
  const w = n.input[1];
  replaced.add(w);
  added.push(tensor(`${w}.int8`, DT.INT8, dims, new Uint8Array(q.buffer)));
  added.push(floatTensor(`${w}.scale`, scales, [scales.length]));
  added.push(tensor(`${w}.zero_point`, DT.INT8, [scales.length], new Uint8Array(scales.length)));
  node(
    "DequantizeLinear",
    `${w}/DQ`,
    [`${w}.int8`, `${w}.scale`, `${w}.zero_point`],
    [`${w}.dq`],
    t.axis,
  );
  if (n.input.length < 3) return [`${w}.dq`];
  const b = n.input[2];
  replaced.add(b);
  const bias = floatsOf(inits.get(b)!);
  const bScale = Float32Array.from(scales, (s) => Math.fround(s * x.scale));
  const bq = Int32Array.from(bias, (v, i) => roundEven(v / bScale[i]));
  added.push(tensor(`${b}.int32`, DT.INT32, [bq.length], new Uint8Array(bq.buffer)));
  added.push(floatTensor(`${b}.scale`, bScale, [bq.length]));
  added.push(tensor(`${b}.zero_point`, DT.INT32, [bq.length], new Uint8Array(bq.length * 4)));
  node(
    "DequantizeLinear",
    `${b}/DQ`,
    [`${b}.int32`, `${b}.scale`, `${b}.zero_point`],
    [`${b}.dq`],
    0,
  );
  return [`${w}.dq`, `${b}.dq`];
}
