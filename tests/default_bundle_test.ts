/**
 * The committed default model: the registry's active bundle loads and validates on both
 * backends, and its accuracy on all 10,000 test images, re-measured here through onnxruntime,
 * is the one its manifest states and at least 88%; its novelty threshold flags 5 +- 1% of them.
 */
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { argmax } from "../common/argmax.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { resolveActive } from "../common/registry.ts";
import { noveltyJudge } from "../serve/novelty.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";
import { readTestImages } from "../testkit/test_images.ts";

const REGISTRY = resolve(new URL("../models", import.meta.url).pathname);

Deno.test("the default bundle scores its manifest's test accuracy (>= 88%) on 10,000 images, on both backends", async () => {
  const active = await resolveActive(REGISTRY);
  const test = readTestImages(10000);
  assert.ok(test, "Fashion-MNIST test files are missing: apt-get install -y dataset-fashion-mnist");
  assert.equal(test.count, 10000);
  const x = normalizePixels(test.images);
  const preds: Record<string, Int32Array> = {};
  for (const backend of ["native", "wasm"] as const) {
    const s = await serveBundle(backend, active.dir);
    try {
      const K = s.model.labels.length;
      const pred = new Int32Array(test.count);
      const judge = noveltyJudge(s.model);
      let novel = 0;
      for (let start = 0; start < test.count; start += 256) {
        const n = Math.min(256, test.count - start);
        const images = x.subarray(start * 784, (start + n) * 784);
        const out = await s.model.encode(images, n);
        for (const f of judge?.judge(out, images) ?? []) if (f.outOfDistribution) novel++;
        for (let i = 0; i < n; i++) pred[start + i] = argmax(out.probabilities, i * K, K);
      }
      let correct = 0;
      for (let i = 0; i < test.count; i++) if (pred[i] === test.labels[i]) correct++;
      const acc: number = correct / test.count;
      const stated = s.model.manifest.metrics.testAccuracy;
      console.log(
        `${active.name}@${active.version} on ${backend}: ${(acc * 100).toFixed(2)}% (manifest ${
          (stated * 100).toFixed(2)
        }%)`,
      );
      assert.equal(s.model.manifest.metrics.evaluatedOn ?? 10000, 10000);
      assert.ok(Math.abs(acc - stated) <= 0.0002, `re-measured ${acc}, manifest says ${stated}`);
      assert.ok(acc >= 0.88, `default bundle accuracy ${acc} is below 88%`);
      preds[backend] = pred;
      // Calibration holds: the default threshold (95th held-out percentile) flags 5 +- 1%.
      assert.ok(judge, "the default bundle carries a novelty calibration");
      const rate: number = novel / test.count;
      console.log(`  novelty: ${(rate * 100).toFixed(2)}% of test images out of distribution`);
      assert.ok(Math.abs(rate - 0.05) <= 0.01, `default threshold flags ${rate} of test images`);
    } finally {
      await s.slot.close();
    }
  }
  let differ = 0;
  for (let i = 0; i < test.count; i++) if (preds.native[i] !== preds.wasm[i]) differ++;
  assert.ok(differ <= 2, `native and wasm disagree on ${differ} images`);
});
