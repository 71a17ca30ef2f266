/**
 * Checks the wasm training kernels (./kernels.ts) against the tfjs pure-JS cpu backend, the
 * reference implementation: each kernel on small random cases (strides 1/2/3, same/valid/
 * explicit padding, 3x3 and 5x5, batch > 1, several channels), then whole gradients of a small
 * conv + conv2dTranspose + dense net. Tolerance: max |wasm - cpu| <= 1e-4 * max(1, max |cpu|).
 * Each case also checks that no tensor and no wasm buffer leaks. Random data is seeded.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "./tfjs_backend.ts";

const TOL = 1e-4;
const worst: { name: string; err: number; rel: number }[] = [];

/** mulberry32: a tiny seeded PRNG so failures reproduce. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randn(shape: number[], seed: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(shape.reduce((p, d) => p * d, 1));
  for (let i = 0; i < a.length; i++) a[i] = r() * 2 - 1;
  return a;
}

type Inputs = Record<string, { data: Float32Array; shape: number[] }>;

/** Draws inputs of the given shapes (in key order), each from the next seed from `first` on. */
function seededInputs(first: number): (shapes: Record<string, number[]>) => Inputs {
  let seed = first;
  return (shapes) =>
    Object.fromEntries(
      Object.entries(shapes).map(([k, shape]) => [k, { data: randn(shape, seed++), shape }]),
    );
}

/** Runs `fn` on `backend` with fresh tensors built from `inputs`; returns the flat outputs. */
async function runOn(
  backend: "cpu" | "wasm",
  inputs: Inputs,
  fn: (t: Record<string, tf.Tensor>) => tf.Tensor | tf.Tensor[],
) {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const ids = backend === "wasm"
    ? (tf.backend() as unknown as { numDataIds(): number }).numDataIds()
    : 0;
  const t: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(inputs)) t[k] = tf.tensor(v.data, v.shape);
  const out = tf.tidy(() => fn(t));
  const outs = Array.isArray(out) ? out : [out];
  const res = outs.map((o) => ({ shape: o.shape, data: o.dataSync() as Float32Array }));
  tf.dispose([...outs, ...Object.values(t)]);
  assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
  if (backend === "wasm") {
    assert.equal(
      (tf.backend() as unknown as { numDataIds(): number }).numDataIds(),
      ids,
      "wasm: backend buffers leaked",
    );
  }
  return res;
}

async function compare(
  name: string,
  inputs: Inputs,
  fn: (t: Record<string, tf.Tensor>) => tf.Tensor | tf.Tensor[],
) {
  const ref = await runOn("cpu", inputs, fn);
  const got = await runOn("wasm", inputs, fn);
  assert.equal(got.length, ref.length);
  for (let i = 0; i < ref.length; i++) {
    assert.deepEqual(got[i].shape, ref[i].shape, `${name}: output ${i} shape`);
    let maxRef = 0, err = 0;
    for (let j = 0; j < ref[i].data.length; j++) {
      maxRef = Math.max(maxRef, Math.abs(ref[i].data[j]));
      err = Math.max(err, Math.abs(ref[i].data[j] - got[i].data[j]));
    }
    const bound = TOL * Math.max(1, maxRef);
    worst.push({ name: `${name}#${i}`, err, rel: err / Math.max(1, maxRef) });
    assert.ok(
      err <= bound,
      `${name} output ${i}: max abs error ${err} > ${bound} (max |ref| ${maxRef})`,
    );
  }
}

type Pad = "same" | "valid" | [
  [number, number],
  [number, number],
  [number, number],
  [number, number],
];
interface ConvCase {
  B: number;
  H: number;
  W: number;
  Cin: number;
  Cout: number;
  K: number;
  s: number | [number, number];
  pad: Pad;
}

function convCases(): ConvCase[] {
  const cases: ConvCase[] = [];
  let i = 0;
  for (const s of [1, 2, 3] as const) {
    for (const K of [3, 5]) {
      for (const pad of ["same", "valid"] as const) {
        for (const [H, W] of [[7, 7], [8, 10], [14, 9]]) {
          cases.push({
            B: 2 + (i % 2),
            H,
            W,
            Cin: 1 + (i % 3) * 2,
            Cout: 2 + (i % 2) * 3,
            K,
            s,
            pad,
          });
          i++;
        }
      }
    }
  }
  cases.push({
    B: 2,
    H: 9,
    W: 8,
    Cin: 3,
    Cout: 4,
    K: 3,
    s: 2,
    pad: [[0, 0], [1, 0], [2, 1], [0, 0]],
  });
  cases.push({
    B: 2,
    H: 11,
    W: 10,
    Cin: 2,
    Cout: 3,
    K: 5,
    s: 3,
    pad: [[0, 0], [0, 2], [3, 0], [0, 0]],
  });
  cases.push({ B: 3, H: 10, W: 9, Cin: 2, Cout: 3, K: 3, s: [2, 1], pad: "same" });
  cases.push({ B: 2, H: 12, W: 12, Cin: 4, Cout: 5, K: 3, s: [1, 3], pad: "valid" });
  return cases;
}

function outShape(c: ConvCase): number[] {
  const info = tf.backend_util.computeConv2DInfo(
    [c.B, c.H, c.W, c.Cin],
    [c.K, c.K, c.Cin, c.Cout],
    c.s,
    1,
    c.pad,
    undefined,
    false,
    "channelsLast",
  );
  return info.outShape;
}

const label = (c: ConvCase) =>
  `B${c.B} ${c.H}x${c.W} Cin${c.Cin} Cout${c.Cout} k${c.K} s${c.s} ${
    typeof c.pad === "string" ? c.pad : JSON.stringify(c.pad.slice(1, 3))
  }`;

test("engine initialises the wasm backend with the training kernels", async () => {
  const info = await initEngine({ backend: "wasm", log: () => {} });
  assert.equal(info.backend, "wasm");
  assert.ok(tf.getKernel("Conv2DBackpropFilter", "wasm"), "Conv2DBackpropFilter registered");
  const again = await initEngine({ backend: "wasm", log: () => {} });
  assert.deepEqual(again, info, "initEngine is idempotent");
});

/** The two gradient kernels of conv2d: dy and the other operand in, the missing one out. */
const CONV_GRADS = [
  {
    kernel: "Conv2DBackpropFilter",
    tag: "dW",
    seed: 1,
    inputs: (c: ConvCase) => ({ x: [c.B, c.H, c.W, c.Cin], dy: outShape(c) }),
    feeds: (t: Record<string, tf.Tensor>) => ({ x: t.x, dy: t.dy }),
    attrs: (c: ConvCase) => ({ filterShape: [c.K, c.K, c.Cin, c.Cout] }),
  },
  {
    kernel: "Conv2DBackpropInput",
    tag: "dx",
    seed: 1000,
    inputs: (c: ConvCase) => ({ dy: outShape(c), f: [c.K, c.K, c.Cin, c.Cout] }),
    feeds: (t: Record<string, tf.Tensor>) => ({ dy: t.dy, filter: t.f }),
    attrs: (c: ConvCase) => ({ inputShape: [c.B, c.H, c.W, c.Cin] }),
  },
];

for (const g of CONV_GRADS) {
  test(`${g.kernel} matches the cpu backend`, async () => {
    const draw = seededInputs(g.seed);
    for (const c of convCases()) {
      await compare(
        `${g.tag} ${label(c)}`,
        draw(g.inputs(c)),
        (t) =>
          tf.engine().runKernel(g.kernel, g.feeds(t), {
            strides: c.s,
            pad: c.pad,
            dataFormat: "NHWC",
            ...g.attrs(c),
          }) as tf.Tensor,
      );
    }
  });
}

test("conv2dTranspose as tfjs-layers sizes it matches the cpu backend", async () => {
  // tfjs-layers output size: same -> in*s; valid -> in*s + max(k - s, 0).
  const draw = seededInputs(2000);
  for (const s of [1, 2, 3]) {
    for (const K of [3, 5]) {
      for (const pad of ["same", "valid"] as const) {
        const [B, h, w, Cin, Cout] = [2, 4, 5, 3, 2];
        const len = (d: number) => (pad === "same" ? d * s : d * s + Math.max(K - s, 0));
        const xShape = [B, h, w, Cin], fShape = [K, K, Cout, Cin];
        await compare(
          `conv2dTranspose k${K} s${s} ${pad}`,
          draw({ x: xShape, f: fShape }),
          (t) =>
            tf.conv2dTranspose(
              t.x as tf.Tensor4D,
              t.f as tf.Tensor4D,
              [B, len(h), len(w), Cout],
              s,
              pad,
            ),
        );
      }
    }
  }
});

test("BatchMatMul and fused matMul with transposes match the cpu backend", async () => {
  const draw = seededInputs(3000);
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]]) {
    const [M, Kd, N] = [5, 7, 3];
    const aShape = ta ? [Kd, M] : [M, Kd], bShape = tb ? [N, Kd] : [Kd, N];
    const a3 = [4, ...aShape], b3 = [4, ...bShape];
    await compare(
      `matMul tA=${ta} tB=${tb}`,
      draw({ a: aShape, b: bShape }),
      (t) => tf.matMul(t.a as tf.Tensor2D, t.b as tf.Tensor2D, ta, tb),
    );
    await compare(
      `batched matMul tA=${ta} tB=${tb}`,
      draw({ a: a3, b: b3 }),
      (t) => tf.matMul(t.a as tf.Tensor3D, t.b as tf.Tensor3D, ta, tb),
    );
    await compare(
      `fused matMul tA=${ta} tB=${tb}`,
      draw({ a: aShape, b: bShape, bias: [N] }),
      (t) =>
        tf.fused.matMul({
          a: t.a as tf.Tensor2D,
          b: t.b as tf.Tensor2D,
          transposeA: ta,
          transposeB: tb,
          bias: t.bias,
          activation: "relu",
        }),
    );
  }
});

test("Sum over leading axes (bias gradients) matches the cpu backend", async () => {
  const draw = seededInputs(3500);
  for (
    const [shape, axis, keepDims] of [
      [[4, 5, 6, 3], [0, 1, 2], false],
      [[4, 5, 6, 3], [2, 0, 1], true],
      [[7, 9], 0, false],
      [[4, 5, 6, 3], [1, 2], false],
      [[4, 5, 6, 3], -1, false],
    ] as [number[], number | number[], boolean][]
  ) {
    await compare(
      `sum [${shape}] axis ${axis} keepDims ${keepDims}`,
      draw({ x: shape }),
      (t) => tf.sum(t.x, axis, keepDims),
    );
  }
});

test("gradients of a conv + conv2dTranspose + dense net match the cpu backend", async () => {
  const shapes = {
    x: [3, 12, 12, 2],
    w1: [3, 3, 2, 4],
    w2: [5, 5, 4, 4],
    w3: [3, 3, 3, 4],
    w4: [12 * 12 * 3, 5],
    b4: [5],
  };
  await compare("whole-net grads", seededInputs(4000)(shapes), (t) => {
    const f = (
      x: tf.Tensor,
      w1: tf.Tensor,
      w2: tf.Tensor,
      w3: tf.Tensor,
      w4: tf.Tensor,
      b4: tf.Tensor,
    ) => {
      const h1 = tf.relu(tf.conv2d(x as tf.Tensor4D, w1 as tf.Tensor4D, 2, "same")); // 6x6x4
      const h2 = tf.relu(tf.conv2d(h1, w2 as tf.Tensor4D, 1, "same")); // 6x6x4
      const h3 = tf.conv2dTranspose(h2, w3 as tf.Tensor4D, [3, 12, 12, 3], 2, "same"); // 12x12x3
      const d = tf.fused.matMul({
        a: tf.reshape(h3, [3, -1]),
        b: w4 as tf.Tensor2D,
        bias: b4,
        activation: "relu",
      });
      return tf.sum(tf.square(tf.sub(d, 0.1)));
    };
    return tf.grads(f)([t.x, t.w1, t.w2, t.w3, t.w4, t.b4]);
  });
});

test("a tfjs-layers conv model trains on wasm like on cpu (variableGrads)", async () => {
  const xShape = [4, 8, 8, 1];
  const inputs: Inputs = {
    x: { data: randn(xShape, 5000).map((v) => (v + 1) / 2), shape: xShape },
  };
  await compare("layers variableGrads", inputs, (t) => {
    const enc = tf.sequential({
      layers: [
        tf.layers.conv2d({
          inputShape: [8, 8, 1],
          filters: 3,
          kernelSize: 3,
          strides: 2,
          padding: "same",
          activation: "relu",
          kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
        }),
        tf.layers.conv2dTranspose({
          filters: 1,
          kernelSize: 3,
          strides: 2,
          padding: "same",
          kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
        }),
      ],
    });
    const { grads, value } = tf.variableGrads(() =>
      tf.mean(tf.square(tf.sub(enc.apply(t.x) as tf.Tensor, t.x))) as tf.Scalar
    );
    const out = [value, ...enc.trainableWeights.map((w) => grads[w.originalName])];
    enc.dispose();
    return out;
  });
});

test("NCHW is rejected with a clear error", async () => {
  await tf.setBackend("wasm");
  const x = tf.zeros([1, 2, 4, 4]), dy = tf.zeros([1, 3, 4, 4]);
  assert.throws(
    () =>
      tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
        strides: 1,
        pad: "same",
        dataFormat: "NCHW",
        filterShape: [3, 3, 2, 3],
      }),
    /NCHW.*not supported/,
  );
  tf.dispose([x, dy]);
});

test("report the measured errors", () => {
  const byKind = new Map<string, { err: number; rel: number; n: number }>();
  for (const w of worst) {
    const kind = w.name.split(" ")[0];
    const k = byKind.get(kind) ?? { err: 0, rel: 0, n: 0 };
    byKind.set(kind, { err: Math.max(k.err, w.err), rel: Math.max(k.rel, w.rel), n: k.n + 1 });
  }
  for (const [kind, k] of byKind) {
    console.log(
      `${kind}: ${k.n} outputs, max abs err ${k.err.toExponential(2)}, max err/max(1,|ref|) ${
        k.rel.toExponential(2)
      }`,
    );
  }
});
