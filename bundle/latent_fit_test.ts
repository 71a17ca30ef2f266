import { ok, strictEqual } from "node:assert/strict";
import { applyMap, fitAffine, fitProcrustes, fitTranslation, rSquared } from "./latent_fit.ts";

function lcg(seed: number) {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
}

/** A random rotation of R^d (Gram-Schmidt on random vectors). */
function rotation(d: number, rand: () => number): number[][] {
  const q: number[][] = [];
  for (let i = 0; i < d; i++) {
    let v = Array.from({ length: d }, rand);
    for (const u of q) {
      const dot = v.reduce((s, x, j) => s + x * u[j], 0);
      v = v.map((x, j) => x - dot * u[j]);
    }
    const norm = Math.hypot(...v);
    q.push(v.map((x) => x / norm));
  }
  return q;
}

function transform(
  x: Float32Array,
  _d: number,
  n: number,
  m: number[][],
  b: number[],
  noise = 0,
  rand = Math.random,
) {
  return applyMap({ method: "affine", matrix: m, bias: b }, x, n).map((v) => v + noise * rand());
}

Deno.test("fitProcrustes() recovers a scaled rotation exactly, and keeps every neighbour", () => {
  const rand = lcg(3), d = 6, n = 600;
  const x = Float32Array.from({ length: n * d }, rand);
  const q = rotation(d, rand).map((r) => r.map((v) => 2.5 * v));
  const y = transform(x, d, n, q, [1, -2, 0.5, 3, 0, -1]);
  const f = fitProcrustes(x, y, d, n);
  for (let r = 0; r < d; r++) {
    for (let c = 0; c < d; c++) ok(Math.abs(f.matrix[r][c] - q[r][c]) < 1e-4);
  }
  const fit = fitTranslation(x, d, y, d, n);
  strictEqual(fit.best.neighbours, 1);
  ok(fit.best.r2 > 0.99999);
  // Untranslated latents in a rotated space find few of the right neighbours.
  ok(fit.untranslatedNeighbours! < 0.5, `untranslated ${fit.untranslatedNeighbours}`);
  strictEqual(fit.tried.map((t) => t.method).join(), "procrustes,affine,rbf");
});

Deno.test("fitAffine() fits a shear Procrustes cannot, and fitTranslation() picks it", () => {
  const rand = lcg(5), d = 4, n = 800;
  const x = Float32Array.from({ length: n * d }, rand);
  const shear = [[3, 0, 0, 0], [2, 0.2, 0, 0], [0, 0, 1, 0], [0, 0, 1.5, 0.1]];
  const y = transform(x, d, n, shear, [0, 0, 0, 0], 0.001, rand);
  const a = fitAffine(x, d, y, d, n);
  ok(rSquared(applyMap(a, x, n), y, d, n) > 0.999);
  const fit = fitTranslation(x, d, y, d, n);
  ok(fit.best.method !== "procrustes");
  const pro = fit.tried.find((t) => t.method === "procrustes")!;
  ok(fit.best.neighbours > pro.neighbours, JSON.stringify(fit.tried));
});

Deno.test("fitRbf() bends where the spaces are not linearly related, and wins there", () => {
  const rand = lcg(13), d = 3, n = 2000;
  const x = Float32Array.from({ length: n * d }, () => 4 * rand());
  const y = x.map((v, i) => (i % d === 0 ? v + 0.8 * Math.sin(2 * v) : v * v));
  const fit = fitTranslation(x, d, y, d, n, { centres: 200 });
  strictEqual(fit.best.method, "rbf");
  const affine = fit.tried.find((t) => t.method === "affine")!;
  ok(fit.best.r2 > 0.99 && fit.best.r2 > affine.r2 + 0.05, JSON.stringify(fit.tried));
  strictEqual(fit.best.kernel!.centres.length, 200);
});

Deno.test("fitTranslation() maps between different latent sizes (no Procrustes)", () => {
  const rand = lcg(9), n = 300;
  const x = Float32Array.from({ length: n * 2 }, rand);
  const y = transform(x, 2, n, [[1, 0], [0, 1], [1, 1]], [0, 0, 0]);
  const fit = fitTranslation(x, 2, y, 3, n);
  strictEqual(fit.untranslatedNeighbours, null);
  strictEqual(fit.tried.map((t) => t.method).sort().join(), "affine,rbf");
  ok(fit.best.r2 > 0.9999);
});
