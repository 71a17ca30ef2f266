import assert from "node:assert/strict";
import { mulberry32 } from "../common/random.ts";
import {
  fitClassGaussians,
  imageStats,
  noveltyFeatures,
  noveltyScorer,
  percentileOf,
  percentileTable,
  scoreRows,
  thresholdAt,
  validateNovelty,
} from "./novelty.ts";

/** n points per class around class centres (c * 10, -c), with covariance diag(sx^2, sy^2). */
function blobs(n: number, k: number, sx: number, sy: number, seed = 1) {
  const r = mulberry32(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const x = new Float32Array(n * k * 2), labels = new Uint8Array(n * k);
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < n; i++) {
      const j = c * n + i;
      labels[j] = c;
      x[2 * j] = c * 10 + sx * gauss();
      x[2 * j + 1] = -c + sy * gauss();
    }
  }
  return { x, labels };
}

Deno.test("fitClassGaussians() recovers means and gives squared Mahalanobis distances", () => {
  const { x, labels } = blobs(4000, 2, 2, 0.5);
  const g = fitClassGaussians(x, labels, 8000, 2, "tied");
  assert.ok(Math.abs(g.means[1][0] - 10) < 0.1 && Math.abs(g.means[1][1] + 1) < 0.05);
  const s = noveltyScorer(g);
  // (2 sd along x) from class 0's mean: distance^2 = 4; (2 sd along y): also 4.
  assert.ok(Math.abs(s.score(Float32Array.of(4, 0), 0) - 4) < 0.2);
  assert.ok(Math.abs(s.score(Float32Array.of(0, 1), 0) - 4) < 0.3);
  // The nearest class wins.
  assert.ok(s.score(Float32Array.of(10, -1), 0) < 0.01);
});

Deno.test("fitClassGaussians() per-class adds log det, so a tight class costs less at its mean", () => {
  const { x, labels } = blobs(3000, 2, 1, 1);
  for (let i = 3000; i < 6000; i++) x[2 * i] = 10 + (x[2 * i] - 10) * 3; // class 1 wider in x
  const g = fitClassGaussians(x, labels, 6000, 2, "per-class");
  assert.equal(g.whiten.length, 2);
  assert.ok(g.offsets[1] - g.offsets[0] > 2 * Math.log(3) - 0.2); // log det ratio = log 9
});

Deno.test("fitClassGaussians() names a class without enough images", () => {
  assert.throws(
    () => fitClassGaussians(Float32Array.of(1, 2), Uint8Array.of(0), 1, 2, "tied"),
    /class 0 has 1 fit images/,
  );
});

Deno.test("percentileOf() inverts thresholdAt() and clamps to 0..100", () => {
  const table = percentileTable(Float64Array.from({ length: 1001 }, (_, i) => i / 10)); // 0..100
  assert.equal(table.length, 201);
  assert.ok(Math.abs(thresholdAt(table, 95) - 95) < 1e-9);
  assert.ok(Math.abs(percentileOf(table, 42.3) - 42.3) < 1e-9);
  assert.equal(percentileOf(table, -5), 0);
  assert.equal(percentileOf(table, 1e9), 100);
});

Deno.test("scores above the held-out 95th percentile flag about 5% of fresh in-distribution rows", () => {
  const fit = blobs(3000, 3, 1, 2, 1),
    held = blobs(2000, 3, 1, 2, 2),
    fresh = blobs(3000, 3, 1, 2, 3);
  const s = noveltyScorer(fitClassGaussians(fit.x, fit.labels, 9000, 3, "tied"));
  const th = thresholdAt(percentileTable(scoreRows(s, held.x, 6000)), 95);
  const flagged = scoreRows(s, fresh.x, 9000).filter((v) => v > th).length / 9000;
  assert.ok(Math.abs(flagged - 0.05) < 0.01, `flagged ${flagged}`);
});

Deno.test("imageStats() separates a blank image and noise from a shape with edges", () => {
  const out = new Float32Array(9);
  const blank = new Float32Array(784);
  const square = new Float32Array(784);
  for (let y = 8; y < 20; y++) for (let x = 8; x < 20; x++) square[y * 28 + x] = 1;
  const r = mulberry32(3);
  const noise = Float32Array.from({ length: 784 }, () => r());
  imageStats(blank, 0, out, 0);
  imageStats(square, 0, out, 3);
  imageStats(noise, 0, out, 6);
  assert.ok(Math.abs(out[1] - Math.log(1e-3)) < 1e-6); // no edges at all
  assert.ok(out[4] > out[1] + 2 && out[7] > out[4] + 1); // square has edges, noise far more
});

Deno.test("noveltyFeatures() concatenates mu, logvar and stats per image", () => {
  const mu = Float32Array.of(1, 2, 3, 4), logvar = Float32Array.of(5, 6, 7, 8);
  const images = new Float32Array(2 * 784);
  const x = noveltyFeatures(["mu", "logvar", "stats"], { mu, logvar, images }, 2, 2);
  assert.equal(x.length, 2 * 7);
  assert.deepEqual(Array.from(x.subarray(7, 11)), [3, 4, 7, 8]);
});

Deno.test("validateNovelty() names the first bad field", () => {
  const { x, labels } = blobs(50, 2, 1, 1);
  const g = fitClassGaussians(x, labels, 100, 2, "tied");
  const good = {
    method: "class-gaussian-mahalanobis",
    features: ["mu"],
    ...g,
    percentiles: [0, 1, 2],
    threshold: { percentile: 95, score: 1.9 },
    fit: { images: 100, source: "test" },
    heldOut: { images: 100, source: "test" },
  };
  assert.equal(validateNovelty(good, 2, 2).covariance, "tied");
  assert.throws(() => validateNovelty({ ...good, features: ["z"] }, 2, 2), /novelty\.features/);
  assert.throws(() => validateNovelty(good, 2, 3), /"novelty\.means\[0\]" must have 3 entries/);
  assert.throws(
    () => validateNovelty({ ...good, percentiles: [0, 2, 1] }, 2, 2),
    /"novelty\.percentiles\[2\]" must not be below/,
  );
  assert.throws(() => validateNovelty({ ...good, means: [[0, NaN], [1, 1]] }, 2, 2), /finite/);
});
