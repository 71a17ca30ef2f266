/**
 * Tests of trainer/bundle.ts writeBundle on untrained TINY models (export and evaluation take
 * about a second): the written directory must pass the same checks the server runs
 * (bundle/), its metrics must be consistent with the evaluated split, its probe must
 * reproduce in onnxruntime-node, and rewriting a directory must replace the bundle cleanly.
 *
 *   node --import tsx --test trainer/bundle_test.ts
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import * as ort from "onnxruntime-node";
import {
  bundleFile,
  checkProbe,
  checkSessionIO,
  latentMap,
  readManifest,
  verifyBundleFiles,
} from "../bundle/mod.ts";
import { bundleFixture } from "./_bundle_fixture.ts";
import { classificationMetrics, pickProbeRows, writeBundle } from "./bundle.ts";
import { TINY_VAE } from "./model.ts";

const fx = bundleFixture("write-bundle-test-");

test("writeBundle() writes a bundle the server-side checks accept, with consistent metrics and a reproducible probe", async () => {
  const dir = join(fx.work, "a");
  const now = new Date("2026-11-26T13:15:00.123Z");
  const opts = fx.options(TINY_VAE);
  const m = await writeBundle(dir, { ...opts, now });

  assert.match(m.version, /^20261126T131500Z-[0-9a-f]{8}$/);
  assert.equal(m.version.slice(-8), m.files.find((f) => f.role === "model")!.sha256.slice(0, 8));
  assert.equal(m.created, now.toISOString());
  assert.deepEqual(m.files.map((f) => f.role), ["model", "decoder", "latent-map"]);
  assert.deepEqual((await readdir(dir)).sort(), [
    "decoder.onnx",
    "latent-map.json",
    "manifest.json",
    "model.onnx",
  ], "no temp files left");
  assert.deepEqual(await readManifest(dir), m);
  await verifyBundleFiles(dir, m);
  assert.deepEqual(m.training.vae, TINY_VAE, "the architecture config travels with the weights");
  assert.deepEqual((m.data as { fingerprint: unknown }).fingerprint, fx.fingerprint);

  // Metrics: computed on all 300 images; confusion rows are true labels.
  assert.equal(m.metrics.evaluatedOn, 300);
  assert.equal(m.metrics.testElbo, 543.2);
  const confusion = m.metrics.confusion;
  assert.equal(confusion.flat().reduce((a, b) => a + b, 0), 300);
  for (let k = 0; k < 10; k++) {
    const count = fx.test300.labels.filter((l) => l === k).length;
    assert.equal(
      confusion[k].reduce((a, b) => a + b, 0),
      count,
      `row ${k} sums to the class count`,
    );
    assert.equal(m.metrics.perClassAccuracy[k], count ? confusion[k][k] / count : 0);
  }
  assert.equal(m.metrics.testAccuracy, confusion.reduce((s, row, k) => s + row[k], 0) / 300);
  assert.ok((m.metrics.exportParityMaxAbsDiff as number) <= 1e-4);

  // Probe: 8 cases of 8 different classes, reproduced by a fresh session on the written file.
  assert.equal(m.probe.cases.length, 8);
  assert.equal(m.probe.tolerance, 1e-4);
  const session = await ort.InferenceSession.create(await readFile(bundleFile(dir, m, "model")));
  try {
    checkSessionIO(m, session, { dir });
    const report = await checkProbe(m, async (images, n) => {
      const out = await session.run({ image: new ort.Tensor("float32", images, [n, 1, 28, 28]) });
      return {
        probabilities: out.probabilities.data as Float32Array,
        mu: out.mu.data as Float32Array,
      };
    }, dir);
    assert.equal(report.maxAbsDiff, 0, "same runtime, same file: bit-identical");
  } finally {
    await session.release();
  }

  // Latent map: L = 2 plots mu itself, for every evaluated image (fewer than 2000 here).
  const map = JSON.parse(await readFile(join(dir, "latent-map.json"), "utf8"));
  assert.equal(map.method, "mu");
  assert.equal(map.points.length, 300);
  assert.deepEqual(map.labels, Array.from(fx.test300.labels));
  assert.ok(map.points.every((p: number[]) => p.length === 2 && p.every(Number.isFinite)));
});

test("writeBundle() over an existing bundle replaces it; no decoder and no latent map leave those files out", async () => {
  const dir = join(fx.work, "b");
  await writeBundle(dir, { ...fx.options(TINY_VAE), now: new Date("2026-01-01T00:00:00Z") });
  const vae3 = { ...TINY_VAE, latent: 3 };
  const m = await writeBundle(dir, {
    ...fx.options(vae3, { decoder: false }),
    latentMapPoints: 0,
    now: new Date("2026-01-02T00:00:00Z"),
  });
  assert.ok(m.version.startsWith("20260102T000000Z-"));
  assert.equal(m.decoder, null);
  assert.equal(m.latentSize, 3);
  assert.deepEqual(m.files.map((f) => f.role), ["model"]);
  assert.ok(
    !(await readdir(dir)).includes("latent-map.json"),
    "a stale latent map must not survive",
  );
  await verifyBundleFiles(dir, await readManifest(dir));
});

test("writeBundle() rejects an empty evaluation split before writing anything", async () => {
  const dir = join(fx.work, "c");
  await assert.rejects(
    writeBundle(dir, {
      ...fx.options(TINY_VAE),
      test: { images: new Uint8Array(0), labels: new Uint8Array(0), count: 0 },
    }),
    /test split must hold/,
  );
  await assert.rejects(readdir(dir), /ENOENT/);
});

test("classificationMetrics() counts rows as true labels and columns as predictions", () => {
  // Two classes: image 0 (label 0) predicted 1, images 1 and 2 (label 1) predicted 1.
  const p = Float32Array.from([0.2, 0.8, 0.1, 0.9, 0.4, 0.6]);
  const m = classificationMetrics(p, Uint8Array.from([0, 1, 1]), 2);
  assert.deepEqual(m.confusion, [[0, 1], [0, 2]]);
  assert.deepEqual(m.perClassAccuracy, [0, 1]);
  assert.equal(m.testAccuracy, 2 / 3);
});

test("pickProbeRows() visits classes round-robin", () => {
  assert.deepEqual(pickProbeRows(Uint8Array.from([2, 2, 0, 1, 0]), 4, 3), [2, 3, 0, 4]);
  assert.deepEqual(
    pickProbeRows(Uint8Array.from([1, 1]), 8, 3),
    [0, 1],
    "stops when the split runs out",
  );
});

test("latentMap() projects a latent onto its principal axes for L > 2", () => {
  // Points spread along (1, 1, 0)/sqrt2 with a little spread along z: the first component is that line.
  const n = 50, L = 3;
  const mu = new Float32Array(n * L);
  for (let i = 0; i < n; i++) {
    const t = i - 25;
    mu.set([t + 5, t - 3, 0.1 * Math.sin(i)], i * L);
  }
  const m = latentMap(mu, L, n);
  assert.equal(m.method, "pca");
  const [c0] = m.components;
  assert.ok(
    Math.abs(c0[0] - Math.SQRT1_2) < 1e-3 && Math.abs(c0[1] - Math.SQRT1_2) < 1e-3 &&
      Math.abs(c0[2]) < 1e-3,
    `first component ${c0}`,
  );
  // Point 0 is (-20, -28, 0); the mean is (4.5, -3.5, ~0): centred (-24.5, -24.5, 0) -> -24.5 * sqrt 2.
  assert.ok(
    Math.abs(m.points[0][0] - -24.5 * Math.SQRT2) < 1e-3,
    `points are centred and projected, got ${m.points[0]}`,
  );
});
