import { test } from "node:test";
import assert from "node:assert/strict";
import { auroc, fprAtTpr } from "./ood_metrics.ts";

test("auroc() is 1 for separated scores, 0.5 for identical ones, 0 when reversed", () => {
  assert.equal(auroc([1, 2, 3], [4, 5]), 1);
  assert.equal(auroc([1, 1], [1, 1, 1]), 0.5);
  assert.equal(auroc([4, 5], [1, 2, 3]), 0);
});

test("auroc() counts each pair: one inversion out of 4 pairs gives 0.75", () => {
  assert.equal(auroc([1, 3], [2, 4]), 0.75);
});

test("fprAtTpr() flags in-distribution scores at or above the 95%-TPR threshold", () => {
  const out = Array.from({ length: 100 }, (_, i) => i + 1); // 1..100: threshold 6 keeps 95
  assert.equal(fprAtTpr([0, 5, 6, 50], out), 0.5);
  assert.equal(fprAtTpr([0, 1, 2], out), 0);
});
