import assert from "node:assert/strict";
import { argmax } from "./argmax.ts";

Deno.test("argmax() finds the largest value of the whole array or of one row", () => {
  assert.equal(argmax([0.1, 0.7, 0.2]), 1);
  const rows = Float32Array.from([0.5, 0.2, 0.3, 0.1, 0.1, 0.8]);
  assert.equal(argmax(rows, 0, 3), 0);
  assert.equal(argmax(rows, 3, 3), 2, "the index is within the row");
});

Deno.test("argmax() gives ties to the first index", () => {
  assert.equal(argmax([0.25, 0.25, 0.25, 0.25]), 0);
  assert.equal(argmax([0, 0.5, 0.5]), 1);
});
