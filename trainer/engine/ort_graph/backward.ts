/**
 * The backward pass of a forward tape segment, one hand-written rule per op the exporter emits:
 *
 * - Gemm Y = X W + b: dX = dY W^T, dW = X^T dY (Gemm transposes), db = ReduceSum(dY, 0).
 * - Relu: dX = dY * Cast(Y > 0).
 * - Flatten / Reshape: Reshape back; Transpose: inverse permutation.
 * - Conv (stride s, pads p): dX = ConvTranspose(dY, W, s, p, output_padding to restore H);
 *   dW = Conv(x as [Cin,B,H,W], dy as the filter [Cout,B,OH,OW], dilation s, pads p), sliced
 *   to k x k and transposed [Cin,Cout,.] -> [Cout,Cin,.]; db = ReduceSum(dY, [0,2,3]).
 * - ConvTranspose: dX = Conv(dY, W, s, p); dW = the same trick with the roles of x and dy
 *   swapped (dy as [Cout,B,OH,OW] is the input, x as [Cin,B,H,W] the filter).
 */
import { ints, type RecordingBuilder, type Shapes, type TapeNode } from "./tape.ts";

/** Gradients gathered per tensor; several contributions are summed when first read. */
class Gradients {
  readonly #grads = new Map<string, string[]>();
  constructor(readonly g: RecordingBuilder, readonly noGrad: Set<string>) {}

  add(name: string, grad: string): void {
    if (this.noGrad.has(name)) return;
    const list = this.#grads.get(name) ?? [];
    list.push(grad);
    this.#grads.set(name, list);
  }

  of(name: string): string | undefined {
    const list = this.#grads.get(name);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) {
      const sum = list.reduce((a, b) => this.g.op("Add", `grad_acc/${name}`, [a, b]));
      this.#grads.set(name, [sum]);
      return sum;
    }
    return list[0];
  }

  all(): Map<string, string> {
    const out = new Map<string, string>();
    for (const name of this.#grads.keys()) {
      const gname = this.of(name);
      if (gname) out.set(name, gname);
    }
    return out;
  }
}

interface RuleContext {
  g: RecordingBuilder;
  shapes: Shapes;
  grads: Gradients;
}

/** Adds the gradients of node `n`'s inputs, given `dy`, the gradient of its output. */
type Rule = (c: RuleContext, n: TapeNode, dy: string) => void;

const bwd = (op: string) => `bwd/${op}`;

const passThrough: Rule = ({ grads }, n, dy) => grads.add(n.inputs[0], dy);

const maskRule: Rule = ({ g, grads }, n, dy) => {
  const [x, w] = n.inputs;
  // Only x * mask with a constant/input mask (dropout) is taped.
  if (!grads.noGrad.has(w)) {
    throw new Error("ort engine: Mul has a gradient rule only for a mask without gradient");
  }
  grads.add(x, g.op("Mul", bwd("mask"), [dy, w]));
};

const reluRule: Rule = ({ g, grads }, n, dy) => {
  // The mask comes from the output: y > 0 exactly where x > 0.
  const mask = g.op("Cast", bwd("relu_mask"), [
    g.op("Greater", bwd("relu_gt"), [n.outputs[0], g.scalar("zero", 0)]),
  ], { to: 1 });
  grads.add(n.inputs[0], g.op("Mul", bwd("relu"), [dy, mask]));
};

const reshapeRule: Rule = ({ g, shapes, grads }, n, dy) => {
  const x = n.inputs[0];
  const shape = g.int64Init("bwd_shape", [-1, ...shapes.get(x)!.slice(1)]);
  grads.add(x, g.op("Reshape", bwd("reshape"), [dy, shape]));
};

const transposeRule: Rule = ({ g, grads }, n, dy) => {
  const perm = ints(n.attrs.perm, []);
  const inv = perm.map((_, j) => perm.indexOf(j));
  grads.add(n.inputs[0], g.op("Transpose", bwd("transpose"), [dy], { perm: inv }));
};

const gemmRule: Rule = ({ g, grads }, n, dy) => {
  const [x, w, b] = n.inputs;
  const a = n.attrs;
  if (
    (a.transA ?? 0) !== 0 || (a.transB ?? 0) !== 0 || a.alpha !== undefined ||
    a.beta !== undefined
  ) {
    throw new Error(
      "ort engine: only plain Gemm (no transpose, alpha = beta = 1) has a gradient rule",
    );
  }
  if (!grads.noGrad.has(x)) grads.add(x, g.op("Gemm", bwd("gemm_dx"), [dy, w], { transB: 1 }));
  grads.add(w, g.op("Gemm", bwd("gemm_dw"), [x, dy], { transA: 1 }));
  if (b) {
    grads.add(
      b,
      g.op("ReduceSum", bwd("gemm_db"), [dy, g.int64Init("axes0", [0])], { keepdims: 0 }),
    );
  }
};

const convRule: Rule = ({ g, shapes, grads }, n, dy) => {
  const [x, w, b] = n.inputs;
  const xs = shapes.get(x)!;
  const ys = shapes.get(n.outputs[0])!;
  const k = ints(n.attrs.kernel_shape, shapes.get(w)!.slice(2));
  const s = ints(n.attrs.strides, [1, 1]);
  const p = ints(n.attrs.pads, [0, 0, 0, 0]);
  const d = ints(n.attrs.dilations, [1, 1]);
  if (d[0] !== 1 || d[1] !== 1) {
    throw new Error("ort engine: dilated convolutions have no gradient rule");
  }
  const conv = n.op === "Conv";
  const attrs = { kernel_shape: k, strides: s, pads: p };
  if (!grads.noGrad.has(x)) {
    if (conv) {
      // H = s*(OH-1) + op + k - pads: the output padding that restores the input size.
      const op = [0, 1].map((j) => xs[2 + j] - (s[j] * (ys[2 + j] - 1) + k[j] - p[j] - p[j + 2]));
      const dx = g.op("ConvTranspose", bwd("conv_dx"), [dy, w], {
        ...attrs,
        output_padding: op,
        dilations: [1, 1],
        group: 1,
      });
      grads.add(x, dx);
    } else {
      const dx = g.op("Conv", bwd("convT_dx"), [dy, w], { ...attrs, dilations: [1, 1], group: 1 });
      grads.add(x, dx);
    }
  }
  // Conv: dW[co,ci,a,b] = sum dy[n,co,i,j] xpad[n,ci,i*s+a,j*s+b];
  // ConvTranspose: dW[ci,co,a,b] = sum x[n,ci,i,j] dypad[n,co,i*s+a,j*s+b].
  const [small, ss, big, bs] = conv ? [dy, ys, x, xs] : [x, xs, dy, ys];
  grads.add(w, filterGradient(g, small, ss, big, bs, k, s, p));
  if (b) {
    const axes = g.int64Init("axes023", [0, 2, 3]);
    grads.add(b, g.op("ReduceSum", bwd("conv_db"), [dy, axes], { keepdims: 0 }));
  }
};

const RULES: Record<string, Rule> = {
  Identity: passThrough,
  Mul: maskRule,
  Relu: reluRule,
  Flatten: reshapeRule,
  Reshape: reshapeRule,
  Transpose: transposeRule,
  Gemm: gemmRule,
  Conv: convRule,
  ConvTranspose: convRule,
};

/**
 * Emits the backward pass of `nodes` (a forward tape segment) given the gradients of some of
 * its outputs. Returns the gradient of every tensor reached (parameters and inputs included),
 * except those in `noGrad` (e.g. the image input) which are not computed.
 */
export function backward(
  g: RecordingBuilder,
  nodes: TapeNode[],
  shapes: Shapes,
  seeds: Map<string, string>,
  noGrad: Set<string>,
): Map<string, string> {
  const grads = new Gradients(g, noGrad);
  for (const [k, v] of seeds) grads.add(k, v);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    const dy = grads.of(n.outputs[0]);
    if (!dy) continue;
    const rule = RULES[n.op];
    if (!rule) throw new Error(`ort engine: op ${n.op} has no gradient rule`);
    rule({ g, shapes, grads }, n, dy);
  }
  return grads.all();
}

/**
 * A filter gradient R[cs,cb,a,b] = sum_{n,i,j} small[n,cs,i,j] * bigpad[n,cb,i*s+a,j*s+b]
 * (bigpad = big padded by pads[0] on top, pads[1] on the left, zeros elsewhere) as one Conv
 * with the batch as channels: big as [Cb,B,H,W] the input, small as [Cs,B,h,w] the filter,
 * dilation s; the output [Cb,Cs,k',k'] is sliced to k and transposed. (docs/performance.md
 * records the alternative tried, a shift-and-GEMM formulation, and why it was dropped.)
 */
function filterGradient(
  g: RecordingBuilder,
  small: string,
  ss: number[],
  big: string,
  bs: number[],
  k: number[],
  s: number[],
  p: number[],
): string {
  const i64 = (base: string, v: number[]) => g.int64Init(base, v);
  const bt = g.op("Transpose", "bwd/bigT", [big], { perm: [1, 0, 2, 3] });
  const st = g.op("Transpose", "bwd/smallT", [small], { perm: [1, 0, 2, 3] });
  let r = g.op("Conv", "bwd/dw_dilated", [bt, st], {
    kernel_shape: ss.slice(2),
    strides: [1, 1],
    pads: p,
    dilations: s,
    group: 1,
  });
  const rs = [0, 1].map((j) => bs[2 + j] + p[j] + p[j + 2] - (ss[2 + j] - 1) * s[j]);
  if (rs[0] < k[0] || rs[1] < k[1]) {
    throw new Error(`ort engine: internal error: filter gradient ${rs} smaller than kernel ${k}`);
  }
  if (rs[0] !== k[0] || rs[1] !== k[1]) {
    r = g.op("Slice", "bwd/dw_slice", [
      r,
      i64("starts", [0, 0]),
      i64("ends", k),
      i64("axes", [2, 3]),
    ]);
  }
  return g.op("Transpose", "bwd/dw_T", [r], { perm: [1, 0, 2, 3] });
}
