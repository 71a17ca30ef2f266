/**
 * The committed default model: the registry's active bundle loads and validates on both
 * backends, and its accuracy on all 10,000 test images, re-measured here through onnxruntime,
 * is the one its manifest states and at least 88%. Its int8 graph scores within 0.2 points of
 * the fp32 graph on both backends, states its own accuracy, and is at most a third of its size.
 * Its novelty threshold flags 5 +- 1% of the test images.
 */
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { precisionsOf, readManifest } from "../bundle/mod.ts";
import { argmax } from "../common/argmax.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { resolveActive } from "../registry/registry.ts";
import { noveltyJudge } from "../serve/novelty.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";
import { readTestImages } from "../testkit/test_images.ts";

const REGISTRY = resolve(new URL("../models", import.meta.url).pathname);

/** Top labels of the served graph of `precision` on all test images, and the share flagged novel. */
async function predict(
  backend: "native" | "wasm",
  dir: string,
  precision: "fp32" | "int8",
  x: Float32Array,
  count: number,
): Promise<{ pred: Int32Array; novelRate: number }> {
  const s = await serveBundle(backend, dir, { precision });
  try {
    assert.equal(s.model.precision, precision);
    const K = s.model.labels.length;
    const pred = new Int32Array(count);
    const judge = noveltyJudge(s.model);
    assert.ok(judge, "the default bundle carries a novelty calibration");
    let novel = 0;
    for (let start = 0; start < count; start += 256) {
      const n = Math.min(256, count - start);
      const images = x.subarray(start * 784, (start + n) * 784);
      const out = await s.model.encode(images, n);
      for (const f of judge.judge(out, images)) if (f.outOfDistribution) novel++;
      for (let i = 0; i < n; i++) pred[start + i] = argmax(out.probabilities, i * K, K);
    }
    return { pred, novelRate: novel / count };
  } finally {
    await s.slot.close();
  }
}

const accuracy = (pred: Int32Array, labels: Uint8Array): number =>
  pred.reduce((a, p, i) => a + (p === labels[i] ? 1 : 0), 0) / labels.length;

Deno.test("the default bundle scores its manifest's test accuracy (>= 88%) on 10,000 images, fp32 and int8, on both backends", async () => {
  const active = await resolveActive(REGISTRY);
  const manifest = await readManifest(active.dir);
  assert.deepEqual(precisionsOf(manifest), ["fp32", "int8"], "the default bundle carries int8");
  const test = readTestImages(10000);
  assert.ok(test, "Fashion-MNIST test files are missing: apt-get install -y dataset-fashion-mnist");
  assert.equal(test.count, 10000);
  const x = normalizePixels(test.images);
  const preds: Record<string, Int32Array> = {};
  for (const backend of ["native", "wasm"] as const) {
    for (const precision of ["fp32", "int8"] as const) {
      const { pred, novelRate } = await predict(backend, active.dir, precision, x, test.count);
      console.log(`  novelty: ${(novelRate * 100).toFixed(2)}% of test images out of distribution`);
      // Calibration holds: the default threshold (95th held-out percentile) flags 5 +- 1%.
      assert.ok(Math.abs(novelRate - 0.05) <= 0.01, `default threshold flags ${novelRate}`);
      const acc: number = accuracy(pred, test.labels);
      const stated = precision === "fp32"
        ? manifest.metrics.testAccuracy
        : manifest.int8!.metrics.testAccuracy;
      console.log(
        `${active.name}@${active.version} ${precision} on ${backend}: ${
          (acc * 100).toFixed(2)
        }% (manifest ${(stated * 100).toFixed(2)}%)`,
      );
      assert.ok(Math.abs(acc - stated) <= 0.0002, `re-measured ${acc}, manifest says ${stated}`);
      assert.ok(acc >= 0.88, `default bundle ${precision} accuracy ${acc} is below 88%`);
      preds[`${backend}/${precision}`] = pred;
    }
    const gap: number = accuracy(preds[`${backend}/int8`], test.labels) -
      accuracy(preds[`${backend}/fp32`], test.labels);
    assert.ok(Math.abs(gap) <= 0.002, `int8 - fp32 on ${backend} is ${gap * 100} points`);
  }
  for (const precision of ["fp32", "int8"]) {
    let differ = 0;
    const [a, b] = [preds[`native/${precision}`], preds[`wasm/${precision}`]];
    for (let i = 0; i < test.count; i++) if (a[i] !== b[i]) differ++;
    assert.ok(differ <= 2, `${precision}: native and wasm disagree on ${differ} images`);
  }
  const bytes = (role: string) => manifest.files.find((f) => f.role === role)!.bytes;
  assert.ok(bytes(manifest.int8!.role) * 3 <= bytes("model"), "int8 graph is over 1/3 of fp32");
});
