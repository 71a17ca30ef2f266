/**
 * The benchmark's baseline, kept on purpose: what stock tfjs wasm needs to train a conv at all.
 * Stock wasm has no Conv2DBackpropFilter, so without trainer/engine/kernels.ts a VAE cannot
 * train on wasm; this composite (pad, im2col by strided slices, one transposed matmul) is the
 * stock way to get one, and the README's "stock tfjs wasm + naive filter gradient" row and the
 * engine's speed-up are measured against it. Only scripts/bench_train.ts registers it; no test
 * and no training path does.
 */
import * as tf from "@tensorflow/tfjs";
import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";

type Kernel = (a: object) => tf.TensorInfo;

/** The KH*KW strided slices of the padded input, one per filter tap (im2col's columns). */
function im2colSlices(
  k: (name: string) => Kernel,
  backend: BackendWasm,
  xp: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  B: number,
  Cin: number,
): tf.TensorInfo[] {
  const { strideHeight: s1, strideWidth: s2, filterHeight: KH, filterWidth: KW } = info;
  const { outHeight: OH, outWidth: OW } = info;
  const cols: tf.TensorInfo[] = [];
  for (let kh = 0; kh < KH; kh++) {
    for (let kw = 0; kw < KW; kw++) {
      cols.push(
        k("StridedSlice")({
          inputs: { x: xp },
          backend,
          attrs: {
            begin: [0, kh, kw, 0],
            end: [B, kh + (OH - 1) * s1 + 1, kw + (OW - 1) * s2 + 1, Cin],
            strides: [1, s1, s2, 1],
            beginMask: 0,
            endMask: 0,
            ellipsisMask: 0,
            newAxisMask: 0,
            shrinkAxisMask: 0,
          },
        }),
      );
    }
  }
  return cols;
}

/**
 * The baseline: what stock tfjs wasm needs to train a conv at all, a composite filter gradient
 * built from wasm kernels: pad x, KH*KW strided slices concatenated (im2col), one matmul with
 * transposeA (stock BatchMatMul, naive path).
 */
export function registerNaiveFilterGradient(): void {
  const k = (name: string) => tf.getKernel(name, "wasm")!.kernelFunc as unknown as Kernel;
  tf.registerKernel({
    kernelName: "Conv2DBackpropFilter",
    backendName: "wasm",
    kernelFunc: ((
      { inputs, backend, attrs }: {
        inputs: Record<string, tf.TensorInfo>;
        backend: BackendWasm;
        attrs: Record<string, unknown>;
      },
    ) => {
      const { x, dy } = inputs;
      const filterShape = attrs.filterShape as [number, number, number, number];
      const info = tf.backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number],
        filterShape,
        attrs.strides as number,
        1,
        attrs.pad as "same",
        undefined,
        false,
        "channelsLast",
      );
      const [B, , , Cin] = x.shape;
      const { filterHeight: KH, filterWidth: KW, outHeight: OH, outWidth: OW, padInfo: p } = info;
      const xp = k("PadV2")({
        inputs: { x },
        backend,
        attrs: {
          paddings: [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]],
          constantValue: 0,
        },
      });
      const cols = im2colSlices(k, backend, xp, info, B, Cin);
      const cat = k("Concat")({ inputs: cols, backend, attrs: { axis: 3 } });
      const a = k("Reshape")({
        inputs: { x: cat },
        backend,
        attrs: { shape: [B * OH * OW, KH * KW * Cin] },
      });
      const d = k("Reshape")({
        inputs: { x: dy },
        backend,
        attrs: { shape: [B * OH * OW, filterShape[3]] },
      });
      const m = k("BatchMatMul")({
        inputs: { a, b: d },
        backend,
        attrs: { transposeA: true, transposeB: false },
      });
      const out = k("Reshape")({ inputs: { x: m }, backend, attrs: { shape: filterShape } });
      for (const t of [xp, ...cols, cat, a, d, m]) backend.disposeData(t.dataId);
      return out;
    }) as unknown as tf.KernelFunc,
  });
}
