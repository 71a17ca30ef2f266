/**
 * Adam as tfjs runs it, for the ort engine: the state in tfjs's layout (so checkpoints move
 * between engines), the update in float32 operation by operation, and the conversions from a
 * tf.train.adam optimizer and to the checkpoint groups tfjs's trainVae writes.
 */
import * as tf from "@tensorflow/tfjs";

const f = Math.fround;

/** Adam state in tfjs's layout: one m and one v per tfjs weight (model order, NHWC shapes). */
export interface AdamState {
  iterations: number;
  /** The running products beta1^t, beta2^t as float32 (exactly what tfjs keeps). */
  accBeta1: number;
  accBeta2: number;
  m: Float32Array[];
  v: Float32Array[];
}

export type AdamWhere = "graph" | "js";

/** The Adam constants of a trainer's options, with tfjs's defaults. */
export function adamOf(
  opts: { beta1?: number; beta2?: number; epsilon?: number },
): { beta1: number; beta2: number; epsilon: number } {
  return { beta1: opts.beta1 ?? 0.9, beta2: opts.beta2 ?? 0.999, epsilon: opts.epsilon ?? 1e-7 };
}

/** Adam's constants and the step's beta powers and learning rate. */
export interface AdamStep {
  beta1: number;
  beta2: number;
  epsilon: number;
  learningRate: number;
  accBeta1: number;
  accBeta2: number;
}

/** Adam's constants of one step, as float32. */
interface AdamConsts {
  b1: number;
  b2: number;
  c1: number;
  c2: number;
  d1: number;
  d2: number;
  eps: number;
  nlr: number;
}

function adamConsts(c: AdamStep): AdamConsts {
  return {
    b1: f(c.beta1),
    b2: f(c.beta2),
    c1: f(1 - c.beta1),
    c2: f(1 - c.beta2),
    d1: f(1 - c.accBeta1),
    d2: f(1 - c.accBeta2),
    eps: f(c.epsilon),
    nlr: f(-c.learningRate),
  };
}

/**
 * tfjs's Adam on element j, operation by operation in float32 (the graph's Adam does the same
 * ops): m = m*b1 + g*(1-b1); v = v*b2 + g^2*(1-b2);
 * p = (m/(1-accB1)) / (sqrt(v/(1-accB2)) + eps) * (-lr) + p.
 */
function adamAt(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  j: number,
  gj: number,
  k: AdamConsts,
) {
  const mj = f(f(m[j] * k.b1) + f(gj * k.c1));
  const vj = f(f(v[j] * k.b2) + f(f(gj * gj) * k.c2));
  m[j] = mj;
  v[j] = vj;
  p[j] = f(f(f(f(mj / k.d1) / f(f(Math.sqrt(f(vj / k.d2))) + k.eps)) * k.nlr) + p[j]);
}

/**
 * tfjs AdamOptimizer.applyGradients on flat parameters p and slots m, v (in place), with
 * gradient g (adamAt); the caller advances the beta powers.
 */
export function adamUpdate(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  g: Float32Array,
  c: AdamStep,
): void {
  const k = adamConsts(c);
  for (let j = 0; j < g.length; j++) adamAt(p, m, v, j, g[j], k);
}

/**
 * adamUpdate on elements [from, to) with g the mean of `grads` (data-parallel lanes), rounded
 * as a float32 sum in lane order times float32(1/n); elements are independent, so lanes can
 * update disjoint ranges of shared arrays at the same time and get one thread's result.
 */
export function adamUpdateMean(
  p: Float32Array,
  m: Float32Array,
  v: Float32Array,
  grads: Float32Array[],
  c: AdamStep,
  from: number,
  to: number,
): void {
  const k = adamConsts(c), n = grads.length, inv = f(1 / n);
  // One plain loop per lane count: V8 runs a loop over a variable number of arrays ~3x slower.
  if (n === 1) {
    const g0 = grads[0];
    for (let j = from; j < to; j++) adamAt(p, m, v, j, g0[j], k);
  } else if (n === 2) {
    const g0 = grads[0], g1 = grads[1];
    for (let j = from; j < to; j++) adamAt(p, m, v, j, f(f(g0[j] + g1[j]) * inv), k);
  } else {
    for (let j = from; j < to; j++) {
      let gj = grads[0][j];
      for (let l = 1; l < n; l++) gj = f(gj + grads[l][j]);
      adamAt(p, m, v, j, f(gj * inv), k);
    }
  }
}

/** Adam state of a tf.train.adam optimizer (null before its first step: no slots yet). */
export async function adamStateFromTfjs(optimizer: tf.Optimizer): Promise<AdamState | null> {
  const w = await optimizer.getWeights();
  // getWeights() makes a new scalar for the step count (the rest are the optimizer's own slots).
  const iterations = w[0].tensor.dataSync()[0];
  w[0].tensor.dispose();
  if (w.length <= 1) return null;
  const n = (w.length - 1) / 2;
  const a = optimizer as unknown as { accBeta1: tf.Variable; accBeta2: tf.Variable };
  return {
    iterations,
    accBeta1: a.accBeta1.dataSync()[0],
    accBeta2: a.accBeta2.dataSync()[0],
    m: w.slice(1, 1 + n).map((e) => e.tensor.dataSync() as Float32Array),
    v: w.slice(1 + n).map((e) => e.tensor.dataSync() as Float32Array),
  };
}

/**
 * The checkpoint groups tfjs's trainVae writes for its Adam ("optimizer": iter, m..., v...;
 * "adam_beta_powers"), from an ort trainer's state, so either engine can resume the other's
 * checkpoints. `vars` are the tfjs variables in trainer order (names are informative, shapes
 * matter); `started` false writes no slots, like tfjs before its first step. The caller disposes
 * the tensors.
 */
export function adamStateToCheckpoint(
  s: AdamState,
  vars: { name: string; shape: number[] }[],
  started: boolean,
): Record<string, { name: string; tensor: tf.Tensor }[]> {
  const optimizer = started
    ? [
      { name: "iter", tensor: tf.scalar(s.iterations, "int32") as tf.Tensor },
      ...s.m.map((m, i) => ({ name: `${vars[i].name}/m`, tensor: tf.tensor(m, vars[i].shape) })),
      ...s.v.map((v, i) => ({ name: `${vars[i].name}/v`, tensor: tf.tensor(v, vars[i].shape) })),
    ]
    : [];
  return {
    optimizer,
    adam_beta_powers: [{ name: "accBeta1", tensor: tf.scalar(s.accBeta1) }, {
      name: "accBeta2",
      tensor: tf.scalar(s.accBeta2),
    }],
  };
}
