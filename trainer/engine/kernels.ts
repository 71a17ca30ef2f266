/**
 * Training kernels for the tfjs 'wasm' backend. Out of the box that backend cannot train a
 * conv net fast: `Conv2DBackpropFilter` is not registered at all, `Conv2DBackpropInput` (also
 * the forward pass of conv2dTranspose) is a naive loop, `BatchMatMul` leaves XNNPACK for a
 * triple loop whenever an operand is transposed (every dense-layer gradient), and `Sum` over
 * leading axes (every bias gradient) transposes first. This module re-expresses them through
 * the kernels wasm runs fast (XNNPACK Conv2D and untransposed BatchMatMul, Transpose);
 * scripts/bench_train.ts measures them. Call
 * `registerWasmTrainingKernels()` once the wasm backend is imported; it is idempotent.
 * Everything is NHWC-only (the layout tfjs-layers uses); NCHW throws.
 */
import * as tf from "@tensorflow/tfjs";
import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";

type TI = tf.TensorInfo;
type KernelFn = (
  args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs?: tf.NamedAttrMap },
) => TI | TI[];

/**
 * The stock wasm kernel configs we replace or call, saved once so a replacement can call the
 * original and `unregisterWasmTrainingKernels` can restore it.
 */
let originals: Map<string, tf.KernelConfig> | null = null;

function wasmKernel(name: string): tf.KernelConfig {
  const k = tf.getKernel(name, "wasm");
  if (k == null) {
    throw new Error(
      `wasm kernel ${name} is not registered: import @tensorflow/tfjs-backend-wasm first`,
    );
  }
  return k;
}

function original(name: string): KernelFn {
  return (originals?.get(name) ?? wasmKernel(name)).kernelFunc as unknown as KernelFn;
}

function run(
  name: string,
  backend: BackendWasm,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): TI {
  return original(name)({ inputs, backend, attrs }) as TI;
}

const transpose = (b: BackendWasm, x: TI, perm: number[]) => run("Transpose", b, { x }, { perm });
const reshape = (b: BackendWasm, x: TI, shape: number[]) => run("Reshape", b, { x }, { shape });
const slice = (b: BackendWasm, x: TI, begin: number[], size: number[]) =>
  run("Slice", b, { x }, { begin, size });
const conv2d = (
  b: BackendWasm,
  x: TI,
  filter: TI,
  pads: [number, number, number, number],
  dilations: [number, number],
) =>
  run("Conv2D", b, { x, filter }, {
    strides: [1, 1],
    // Explicit pads: the wasm kernel hands 'same' to XNNPACK as a flag, which would not match
    // the tfjs padding of the gradient convolutions below.
    pad: [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]],
    dilations,
    dataFormat: "NHWC",
  });

function requireNHWC(kernel: string, dataFormat: unknown) {
  if (dataFormat != null && dataFormat !== "NHWC" && dataFormat !== "channelsLast") {
    throw new Error(
      `${kernel} on wasm: dataFormat '${dataFormat}' is not supported; only NHWC (channelsLast) is implemented`,
    );
  }
}

/** Disposes intermediates; a TensorInfo returned by the kernel must not be in the list. */
function release(b: BackendWasm, ...ts: (TI | null)[]) {
  for (const t of ts) if (t) b.disposeData(t.dataId);
}

type Shape4 = [number, number, number, number];

/** The forward conv's geometry from a gradient kernel's attributes (NHWC only). */
function convInfo(kernel: string, attrs: tf.NamedAttrMap, xShape: Shape4, filterShape: Shape4) {
  const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as {
    strides: number | [number, number];
    pad: "same" | "valid" | number | [
      [number, number],
      [number, number],
      [number, number],
      [number, number],
    ];
    dataFormat?: string;
    dimRoundingMode?: "floor" | "round" | "ceil";
  };
  requireNHWC(kernel, dataFormat);
  return tf.backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    "channelsLast",
  );
}

/**
 * dW[kh,kw,ci,co] = sum_{b,oh,ow} x[b, oh*s+kh-pt, ow*s+kw-pl, ci] * dy[b,oh,ow,co]. That is a
 * forward conv of x^T [Cin,H,W,B] (Cin as batch, B as channels) with dy^T [OH,OW,B,Cout] as the
 * filter, dilated by the forward stride: output [Cin,KH,KW,Cout].
 */
function conv2DBackpropFilter(
  args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs?: tf.NamedAttrMap },
): TI {
  const { inputs, backend: b, attrs = {} } = args;
  const { x, dy } = inputs as { x: TI; dy: TI };
  const { filterShape } = attrs as unknown as { filterShape: Shape4 };
  const info = convInfo("Conv2DBackpropFilter", attrs, x.shape as Shape4, filterShape);
  const [B, H, W, Cin] = x.shape;
  const {
    strideHeight: sh,
    strideWidth: sw,
    filterHeight: KH,
    filterWidth: KW,
    outHeight: OH,
    outWidth: OW,
  } = info;
  if (
    dy.shape[0] !== B || dy.shape[1] !== OH || dy.shape[2] !== OW || dy.shape[3] !== filterShape[3]
  ) {
    throw new Error(
      `Conv2DBackpropFilter on wasm: dy shape [${dy.shape}] does not match the forward conv output [${B},${OH},${OW},${
        filterShape[3]
      }]`,
    );
  }
  const top = info.padInfo.top, left = info.padInfo.left;
  // Bottom/right padding that makes the dilated conv produce exactly KH x KW outputs. It is at
  // most the forward padding; negative means trailing rows of x the forward conv never read,
  // which XNNPACK cannot express as padding, so they are cropped instead.
  const bottom = (OH - 1) * sh + KH - H - top;
  const right = (OW - 1) * sw + KW - W - left;
  let xs: TI | null = null;
  if (bottom < 0 || right < 0) {
    xs = slice(b, x, [0, 0, 0, 0], [B, H + Math.min(0, bottom), W + Math.min(0, right), Cin]);
  }
  const xT = transpose(b, xs ?? x, [3, 1, 2, 0]);
  const dyT = transpose(b, dy, [1, 2, 0, 3]);
  const out = conv2d(b, xT, dyT, [top, Math.max(0, bottom), left, Math.max(0, right)], [sh, sw]);
  const dW = transpose(b, out, [1, 2, 0, 3]);
  release(b, xs, xT, dyT, out);
  return dW;
}

/**
 * Per spatial axis, how the stride-s transposed conv splits into s stride-1 phases. Output
 * coordinate u = h + padBefore = m*s + phase receives sum_j dy[m-j] * w[phase + s*j], a stride-1
 * correlation of dy with a J = ceil(K/s) tap sub-kernel. `m` runs over [mMin, mMin + rows).
 */
function phasePlan(H: number, OH: number, K: number, s: number, padBefore: number) {
  const J = Math.ceil(K / s);
  const mMin = Math.floor(padBefore / s);
  const mMax = Math.floor((padBefore + H - 1) / s);
  const rows = mMax - mMin + 1;
  const padLo = J - 1 - mMin; // so that conv output 0 is m = mMin
  const padHi = rows + J - 1 - OH - padLo; // so that the conv yields exactly `rows` outputs
  return { J, rows, padLo, padHi, offset: padBefore - mMin * s };
}

/**
 * The phase filter of conv2DBackpropInput:
 * G[t1,t2,co,(p1*sw+p2)*Cin+ci] = w[p1 + sh*(Jh-1-t1), p2 + sw*(Jw-1-t2), ci, co] (zero beyond the
 * kernel). Built in JS: the filter is small and this avoids five tiny ops.
 */
function phaseFilter(b: BackendWasm, filter: TI, Jh: number, Jw: number, sh: number, sw: number) {
  const [KH, KW, Cin, Cout] = filter.shape;
  const S = sh * sw;
  const G = b.makeOutput([Jh, Jw, Cout, S * Cin], "float32");
  const g = b.typedArrayFromHeap(G) as Float32Array; // views taken after the malloc above
  const w = b.typedArrayFromHeap(filter) as Float32Array;
  g.fill(0);
  for (let t1 = 0; t1 < Jh; t1++) {
    for (let p1 = 0; p1 < sh; p1++) {
      const kh = p1 + sh * (Jh - 1 - t1);
      if (kh >= KH) continue;
      for (let t2 = 0; t2 < Jw; t2++) {
        for (let p2 = 0; p2 < sw; p2++) {
          const kw = p2 + sw * (Jw - 1 - t2);
          if (kw >= KW) continue;
          const gBase = (t1 * Jw + t2) * Cout * S * Cin + (p1 * sw + p2) * Cin;
          const wBase = (kh * KW + kw) * Cin * Cout;
          for (let ci = 0; ci < Cin; ci++) {
            for (let co = 0; co < Cout; co++) {
              g[gBase + co * S * Cin + ci] = w[wBase + ci * Cout + co];
            }
          }
        }
      }
    }
  }
  return G;
}

/** Interleaves the phases: [B,R,C,sh*sw*Cin] -> [B*R,sh,C,sw*Cin] (transposed) -> [B,R*sh,C*sw,Cin]. */
function interleavePhases(
  b: BackendWasm,
  y: TI,
  B: number,
  R: number,
  C: number,
  sh: number,
  sw: number,
  Cin: number,
): TI {
  const y4 = reshape(b, y, [B * R, C, sh, sw * Cin]);
  const yt = transpose(b, y4, [0, 2, 1, 3]);
  const full = reshape(b, yt, [B, R * sh, C * sw, Cin]);
  release(b, y, y4, yt);
  return full;
}

/**
 * dx of a conv (= forward conv2dTranspose): one stride-1 Conv2D of dy with a filter holding all
 * s_h*s_w phase sub-kernels side by side in its output channels, then an interleave of the
 * phases by reshape + transpose (wasm's DepthToSpace is slow), then a crop to the input shape.
 */
function conv2DBackpropInput(
  args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs?: tf.NamedAttrMap },
): TI {
  const { inputs, backend: b, attrs = {} } = args;
  const { dy, filter } = inputs as { dy: TI; filter: TI };
  const { inputShape } = attrs as unknown as { inputShape: Shape4 };
  if (filter.dtype !== "float32" || dy.dtype !== "float32") {
    throw new Error(
      `Conv2DBackpropInput on wasm: only float32 is supported, got dy ${dy.dtype}, filter ${filter.dtype}`,
    );
  }
  const [KH, KW, Cin, Cout] = filter.shape;
  const info = convInfo("Conv2DBackpropInput", attrs, inputShape, filter.shape as Shape4);
  const [B, H, W] = inputShape;
  const [, OH, OW] = dy.shape;
  if (
    inputShape[3] !== Cin || dy.shape[3] !== Cout || dy.shape[0] !== B || OH !== info.outHeight ||
    OW !== info.outWidth
  ) {
    throw new Error(
      `Conv2DBackpropInput on wasm: dy [${dy.shape}] / filter [${filter.shape}] do not fit inputShape [${inputShape}]`,
    );
  }
  const sh = info.strideHeight, sw = info.strideWidth;
  const ph = phasePlan(H, OH, KH, sh, info.padInfo.top);
  const pw = phasePlan(W, OW, KW, sw, info.padInfo.left);

  // Negative padding means dy rows that no output inside [0,H) uses: crop them from dy.
  let dyc: TI | null = null;
  if (ph.padLo < 0 || ph.padHi < 0 || pw.padLo < 0 || pw.padHi < 0) {
    const r0 = Math.max(0, -ph.padLo), c0 = Math.max(0, -pw.padLo);
    const r1 = OH - Math.max(0, -ph.padHi), c1 = OW - Math.max(0, -pw.padHi);
    dyc = slice(b, dy, [0, r0, c0, 0], [B, r1 - r0, c1 - c0, Cout]);
  }

  const S = sh * sw;
  const G = phaseFilter(b, filter, ph.J, pw.J, sh, sw);
  const y = conv2d(b, dyc ?? dy, G, [
    Math.max(0, ph.padLo),
    Math.max(0, ph.padHi),
    Math.max(0, pw.padLo),
    Math.max(0, pw.padHi),
  ], [1, 1]);
  release(b, dyc, G);

  const full = S > 1 ? interleavePhases(b, y, B, ph.rows, pw.rows, sh, sw, Cin) : y;
  if (ph.offset === 0 && pw.offset === 0 && ph.rows * sh === H && pw.rows * sw === W) return full;
  const dx = slice(b, full, [0, ph.offset, pw.offset, 0], [B, H, W, Cin]);
  release(b, full);
  return dx;
}

/** Swaps the two innermost axes of a rank >= 2 tensor. */
function transposeInner(b: BackendWasm, x: TI): TI {
  const r = x.shape.length;
  const perm = [...Array(r).keys()];
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return transpose(b, x, perm);
}

/**
 * BatchMatMul / _FusedMatMul with transposes: transpose explicitly, then call the original with
 * none, because only the untransposed case runs through XNNPACK (docs/performance.md).
 */
function untransposed(name: string): KernelFn {
  return (args) => {
    const { inputs, backend: b, attrs = {} } = args;
    const orig = original(name);
    if (!attrs.transposeA && !attrs.transposeB) return orig(args);
    const a = attrs.transposeA ? transposeInner(b, inputs.a as TI) : null;
    const bb = attrs.transposeB ? transposeInner(b, inputs.b as TI) : null;
    const out = orig({
      inputs: { ...inputs, a: a ?? inputs.a, b: bb ?? inputs.b },
      backend: b,
      attrs: { ...attrs, transposeA: false, transposeB: false },
    });
    release(b, a, bb);
    return out;
  };
}

/**
 * Sum over all leading axes of a float32 tensor (every bias gradient: [B,H,W,C] -> [C]) as
 * ones[1,N] x X[N,C] on XNNPACK. Stock wasm Sum first transposes the reduced axes innermost,
 * a large share of a step for the conv activations (docs/performance.md). Other reductions:
 * original.
 */
function sum(
  args: { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs?: tf.NamedAttrMap },
): TI {
  const { inputs, backend: b, attrs = {} } = args;
  const x = inputs.x as TI;
  const r = x.shape.length;
  const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape).sort((p, q) =>
    p - q
  );
  const leading = r >= 2 && axes.length === r - 1 && axes.every((a, i) => a === i);
  const C = x.shape[r - 1], N = tf.util.sizeFromShape(x.shape) / Math.max(1, C);
  if (!leading || x.dtype !== "float32" || N < 2 || C === 0) return original("Sum")(args) as TI;
  const ones = b.makeOutput([1, 1, N], "float32");
  (b.typedArrayFromHeap(ones) as Float32Array).fill(1);
  const x3 = reshape(b, x, [1, N, C]);
  const y = run("BatchMatMul", b, { a: ones, b: x3 }, { transposeA: false, transposeB: false });
  const out = reshape(b, y, attrs.keepDims ? x.shape.map((d, i) => (i === r - 1 ? d : 1)) : [C]);
  release(b, ones, x3, y);
  return out;
}

const REPLACED = ["Conv2DBackpropInput", "BatchMatMul", "_FusedMatMul", "Sum"] as const;

/**
 * Registers the fast training kernels on the 'wasm' backend (idempotent). The wasm backend
 * module must already be imported (its kernels registered); the backend need not be active.
 */
export function registerWasmTrainingKernels(): void {
  if (originals == null) {
    const saved = new Map<string, tf.KernelConfig>();
    for (const name of [...REPLACED, "Conv2D", "Transpose", "Reshape", "Slice"]) {
      saved.set(name, wasmKernel(name));
    }
    originals = saved;
  } else if (
    tf.getKernel("Conv2DBackpropFilter", "wasm")?.kernelFunc === (conv2DBackpropFilter as unknown)
  ) {
    return; // already registered
  }
  const mine: Record<string, KernelFn> = {
    Conv2DBackpropFilter: conv2DBackpropFilter,
    Conv2DBackpropInput: conv2DBackpropInput,
    BatchMatMul: untransposed("BatchMatMul"),
    _FusedMatMul: untransposed("_FusedMatMul"),
    Sum: sum,
  };
  for (const [kernelName, kernelFunc] of Object.entries(mine)) {
    // unregister first: registerKernel warns when overwriting an existing kernel.
    if (tf.getKernel(kernelName, "wasm") != null) tf.unregisterKernel(kernelName, "wasm");
    // Keep the original's setupFunc: it binds the C++ function the original calls, and runs
    // only when the backend initialises, which may be after this registration.
    const orig = originals.get(kernelName);
    tf.registerKernel({
      kernelName,
      backendName: "wasm",
      kernelFunc: kernelFunc as unknown as tf.KernelFunc,
      setupFunc: orig?.setupFunc,
      disposeFunc: orig?.disposeFunc,
    });
  }
}

/** Puts back the stock wasm kernels (for A/B benchmarks); Conv2DBackpropFilter is removed. */
export function unregisterWasmTrainingKernels(): void {
  if (originals == null) return;
  if (tf.getKernel("Conv2DBackpropFilter", "wasm") != null) {
    tf.unregisterKernel("Conv2DBackpropFilter", "wasm");
  }
  for (const name of REPLACED) {
    tf.unregisterKernel(name, "wasm");
    tf.registerKernel(originals.get(name)!);
  }
}
