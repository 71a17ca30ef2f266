/**
 * The common end of every training graph: the flat gradient, or tfjs's Adam update applied to
 * it in the graph.
 */
import type { OnnxDim } from "../../export/_proto.ts";
import { TRAIN_IO } from "./io.ts";
import type { RecordingBuilder } from "./tape.ts";

/**
 * The common end of a training graph: the flat gradient (grads mode) or tfjs's Adam update on
 * it (adam mode), the scalar outputs, and the check that parameters and tfjs weights are a
 * bijection.
 */
export function finishGraph(
  g: RecordingBuilder,
  grads: Map<string, string>,
  spec: { mode?: "grads" | "adam"; adam?: { beta1: number; beta2: number; epsilon: number } },
  scalars: string[],
  total: number,
): { size: number; mode: "grads" | "adam" } {
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
    const pick = (i: number, name: string) =>
      g.op("Slice", name, [sc, g.int64Init("s", [i]), g.int64Init("e", [i + 1])]);
    const d1 = pick(0, "adam_d1"), d2 = pick(1, "adam_d2"), nlr = pick(2, "adam_nlr");
    // prev*b + x*(1-b), Adam's moving average: slot `k` (m or v) of `xk` (g or g2), beta `i`.
    const ema = (k: string, prev: string, xk: string, x: string, i: 1 | 2, out: string) => {
      const b = i === 1 ? beta1 : beta2;
      const kept = g.op("Mul", `adam_${k}_b${i}`, [prev, g.scalar(`b${i}`, b)]);
      const added = g.op("Mul", `adam_${xk}_c${i}`, [x, g.scalar(`c${i}`, 1 - b)]);
      return g.op("Add", `adam_${k}`, [kept, added], {}, out);
    };
    const m2 = ema("m", m, "g", grad, 1, TRAIN_IO.adamMOut);
    const g2 = g.op("Mul", "adam_g2", [grad, grad]);
    const v2 = ema("v", v, "g2", g2, 2, TRAIN_IO.adamVOut);
    const mhat = g.op("Div", "adam_mhat", [m2, d1]);
    const den = g.op("Add", "adam_den", [
      g.op("Sqrt", "adam_sqrt", [g.op("Div", "adam_vhat", [v2, d2])]),
      g.scalar("eps", epsilon),
    ]);
    const upd = g.op("Mul", "adam_step", [g.op("Div", "adam_ratio", [mhat, den]), nlr]);
    g.op("Add", "adam_p", [upd, TRAIN_IO.params], {}, TRAIN_IO.paramsOut);
    for (const o of [TRAIN_IO.paramsOut, TRAIN_IO.adamMOut, TRAIN_IO.adamVOut]) g.output(o, [N]);
  }
  for (const o of scalars) g.output(o, [] as OnnxDim[]);

  // Every tfjs weight element must be exactly one parameter element (layouts are a bijection).
  const seen = new Uint8Array(total);
  for (const p of g.params) for (const s of p.src) seen[s]++;
  const bad = seen.findIndex((c) => c !== 1);
  if (bad >= 0) {
    throw new Error(
      `ort engine: internal error: tfjs weight element ${bad} is used ${
        seen[bad]
      } times by the graph`,
    );
  }

  return { size: N, mode };
}

/** Mean softmax cross-entropy of `logits` against one-hot labels, as output `out`. */
export function crossEntropy(
  g: RecordingBuilder,
  logits: string,
  onehot: string,
  B: number,
  lsmName: string,
  out: string,
): string {
  const lsm = g.op("LogSoftmax", lsmName, [logits], { axis: -1 });
  return g.op(
    "Mul",
    "ce_mean",
    [
      g.op("ReduceSum", "ce_sum", [g.op("Mul", "ce_y", [onehot, lsm])], { keepdims: 0 }),
      g.scalar("c_ce", -1 / B),
    ],
    {},
    out,
  );
}

/** How many rows' top logit is their label (output TRAIN_IO.correct). */
export function countHits(g: RecordingBuilder, logits: string, onehot: string): string {
  const hit = g.op("Equal", "hit", [
    g.op("ArgMax", "pred", [logits], { axis: 1, keepdims: 0 }),
    g.op("ArgMax", "truth", [onehot], { axis: 1, keepdims: 0 }),
  ]);
  return g.op(
    "ReduceSum",
    "correct_sum",
    [g.op("Cast", "hit_f", [hit], { to: 1 })],
    { keepdims: 0 },
    TRAIN_IO.correct,
  );
}
