/**
 * V2 and /v1 give the same predictions: the 10,000 Fashion-MNIST test images through the
 * committed default model (native onnxruntime), sent to /v2 infer as FP32 tensors [64,1,28,28]
 * (pixels / 255, the normalisation /v1 applies) and to /v1/classify as raw pixels, in batches
 * of 64. Labels, probabilities and latents must be identical, bit for bit.
 */
import assert from "node:assert/strict";
import { resolve } from "node:path";
import { normalizePixels } from "../common/preprocess.ts";
import { resolveActive } from "../registry/registry.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";
import { readTestImages } from "../testkit/test_images.ts";

const REGISTRY = resolve(new URL("../models", import.meta.url).pathname);

Deno.test("V2 infer of the 10,000 test images (FP32, batches of 64) gives exactly the /v1 predictions", async () => {
  const test = readTestImages(10000);
  assert.ok(test, "Fashion-MNIST test files are missing: apt-get install -y dataset-fashion-mnist");
  const active = await resolveActive(REGISTRY);
  const s = await serveBundle("native", active.dir);
  try {
    const K = s.model.labels.length;
    let same = 0, correct = 0;
    for (let start = 0; start < test.count; start += 64) {
      const n = Math.min(64, test.count - start);
      const px = test.images.subarray(start * 784, (start + n) * 784);
      const v1 = await (await s.app.request("/v1/classify", {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream" },
        body: px.slice(),
      })).json();
      const res = await s.app.request(`/v2/models/${active.name}/infer`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          inputs: [{
            name: "image",
            datatype: "FP32",
            shape: [n, 1, 28, 28],
            data: Array.from(normalizePixels(px)),
          }],
          outputs: [{ name: "probabilities" }, { name: "mu" }, {
            name: "probabilities",
            parameters: { classification: 1 },
          }],
        }),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const v2 = await res.json();
      assert.equal(v2.model_version, v1.model.version);
      const [probs, mu, top] = v2.outputs;
      for (let i = 0; i < n; i++) {
        const p = v1.predictions[i];
        assert.deepEqual(
          probs.data.slice(i * K, (i + 1) * K),
          p.probabilities,
          `image ${start + i}`,
        );
        assert.deepEqual(
          mu.data.slice(i * s.model.latentSize, (i + 1) * s.model.latentSize),
          p.latent.mu,
        );
        assert.equal(top.data[i], `${p.confidence}:${p.index}:${p.label}`);
        same++;
        if (p.index === test.labels[start + i]) correct++;
      }
    }
    assert.equal(same, 10000);
    // The same accuracy as the manifest states for the graph served (int8 when the bundle has
    // one), so these are the model's real predictions.
    const stated = s.model.precision === "int8"
      ? s.model.manifest.int8!.metrics.testAccuracy
      : s.model.manifest.metrics.testAccuracy;
    assert.ok(
      Math.abs(correct / 10000 - stated) <= 0.0002,
      `accuracy ${correct / 10000} of the ${s.model.precision} graph, manifest says ${stated}`,
    );
  } finally {
    await s.slot.close();
  }
});
