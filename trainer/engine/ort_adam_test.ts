/**
 * adamUpdateMean, the update the training lanes share out: the mean of the lanes' gradients
 * rounded as the float32 sum times float32(1/n), and disjoint ranges updated separately giving
 * bit for bit the update of the whole array.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { mulberry32 } from "../../common/random.ts";
import { adamUpdate, adamUpdateMean } from "./ort_adam.ts";

const N = 1001;
const STEP = {
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-7,
  learningRate: 1e-3,
  accBeta1: Math.fround(0.9 * 0.9),
  accBeta2: Math.fround(0.999 * 0.999),
};

function arrays(seed: number) {
  const r = mulberry32(seed);
  const fill = (scale: number, abs = false) =>
    Float32Array.from({ length: N }, () => (abs ? r() : r() - 0.5) * scale);
  return { p: fill(0.2), m: fill(0.01), v: fill(1e-4, true), g: [fill(1), fill(1), fill(1)] };
}

test("adamUpdateMean of two gradients equals adamUpdate on their float32 mean", () => {
  const a = arrays(1), b = arrays(1);
  const mean = Float32Array.from(a.g[0], (x, j) => Math.fround(x + a.g[1][j]));
  for (let j = 0; j < N; j++) mean[j] = Math.fround(mean[j] * 0.5);
  adamUpdate(a.p, a.m, a.v, mean, STEP);
  adamUpdateMean(b.p, b.m, b.v, b.g.slice(0, 2), STEP, 0, N);
  assert.deepEqual(b.p, a.p);
  assert.deepEqual(b.m, a.m);
  assert.deepEqual(b.v, a.v);
  const before = arrays(1).p;
  const moved = Math.max(...a.p.map((x, j) => Math.abs(x - before[j])));
  assert.ok(moved > 5e-4 && moved < 5e-3, `largest step ${moved}, expected about lr`);
});

test("adamUpdateMean over disjoint ranges equals one update of the whole array", () => {
  for (const lanes of [2, 3]) {
    const whole = arrays(2), parts = arrays(2);
    adamUpdateMean(whole.p, whole.m, whole.v, whole.g.slice(0, lanes), STEP, 0, N);
    const cuts = [0, 333, 334, N];
    for (let k = 0; k + 1 < cuts.length; k++) {
      adamUpdateMean(
        parts.p,
        parts.m,
        parts.v,
        parts.g.slice(0, lanes),
        STEP,
        cuts[k],
        cuts[k + 1],
      );
    }
    assert.deepEqual(parts.p, whole.p, `${lanes} lanes`);
    assert.deepEqual(parts.m, whole.m, `${lanes} lanes`);
    assert.deepEqual(parts.v, whole.v, `${lanes} lanes`);
  }
});
