import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BundleError } from "../../bundle/mod.ts";
import type { Manifest } from "../../bundle/mod.ts";
import { loadBackend } from "./backend.ts";
import { loadModel } from "./model.ts";

const TINY = new URL("../../tests/testdata/tiny-bundle", import.meta.url).pathname;
const native = (await loadBackend("native", { threads: 1 })).backend;
const wasm = (await loadBackend("wasm", { threads: 2 })).backend;

/** A writable copy of the tiny bundle, changed by `edit`, removed afterwards. */
async function withBundle(
  edit: (dir: string, manifest: Manifest) => Promise<void> | void,
  fn: (dir: string) => Promise<void>,
) {
  const root = await mkdtemp(join(tmpdir(), "model-test-"));
  const dir = join(root, "b");
  try {
    await cp(TINY, dir, { recursive: true });
    const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
    await edit(dir, manifest);
    await writeFile(join(dir, "manifest.json"), JSON.stringify(manifest));
    await fn(dir);
  } finally {
    await rm(root, { recursive: true });
  }
}

function bundleError(re: RegExp) {
  return (e: unknown) => e instanceof BundleError && re.test(e.message);
}

Deno.test("loadModel() loads the tiny bundle on both backends, passes its probe, and closes", async () => {
  for (const backend of [native, wasm]) {
    const m = await loadModel(TINY, { backend, maxBatch: 4 });
    assert.equal(m.backend, backend.name);
    assert.ok(m.probe && m.probe.cases >= 1 && m.probe.maxAbsDiff <= m.manifest.probe.tolerance);
    // More images than maxBatch are split into several runs transparently.
    const out = await m.encode(new Float32Array(10 * 784), 10);
    assert.equal(out.probabilities.length, 10 * m.labels.length);
    const px = await m.decode(new Float32Array(3 * m.latentSize), 3);
    assert.equal(px.length, 3 * 784);
    await m.close();
    await assert.rejects(m.encode(new Float32Array(784), 1), /released/);
  }
});

Deno.test("loadModel() refuses a model file whose sha256 differs from the manifest", async () => {
  await withBundle(async (dir) => {
    const bytes = await readFile(join(dir, "model.onnx"));
    bytes[bytes.length - 1] ^= 0xff;
    await writeFile(join(dir, "model.onnx"), bytes);
  }, async (dir) => {
    await assert.rejects(
      loadModel(dir, { backend: native, maxBatch: 8 }),
      bundleError(/model\.onnx: sha256/),
    );
  });
});

Deno.test("loadModel() refuses a manifest whose input name the session does not have", async () => {
  await withBundle((_dir, m) => {
    m.input.name = "pixels_in";
  }, async (dir) => {
    await assert.rejects(
      loadModel(dir, { backend: wasm, maxBatch: 8 }),
      bundleError(/lacks input\(s\) "pixels_in"/),
    );
  });
});

Deno.test("loadModel() refuses a bundle whose probe outputs are not reproduced", async () => {
  await withBundle((_dir, m) => {
    m.probe.cases[0].mu[0] += 0.5;
  }, async (dir) => {
    await assert.rejects(
      loadModel(dir, { backend: native, maxBatch: 8 }),
      bundleError(/probe case 0: mu\[0\]/),
    );
  });
});

Deno.test("loadModel() refuses an invalid manifest and a missing bundle", async () => {
  await withBundle((_dir, m) => {
    (m as { latentSize: number }).latentSize = 0;
  }, async (dir) => {
    await assert.rejects(
      loadModel(dir, { backend: native, maxBatch: 8 }),
      bundleError(/latentSize/),
    );
  });
  await assert.rejects(
    loadModel("/nonexistent/bundle", { backend: native, maxBatch: 8 }),
    bundleError(/manifest\.json/),
  );
});

const TINY_INT8 = new URL("../../tests/testdata/tiny-bundle-int8", import.meta.url).pathname;

Deno.test("loadModel() serves a bundle's int8 graph by default and fp32 when asked, on both backends, each passing its own probe", async () => {
  for (const backend of [native, wasm]) {
    const q = await loadModel(TINY_INT8, { backend, maxBatch: 4 });
    const f = await loadModel(TINY_INT8, { backend, maxBatch: 4, precision: "fp32" });
    try {
      assert.equal(q.precision, "int8");
      assert.equal(f.precision, "fp32");
      assert.ok(q.probe!.maxAbsDiff <= q.manifest.int8!.probe.tolerance);
      // Both answer for the same images, from different graphs.
      const px = new Float32Array(2 * 784).map((_, i) => (i % 29) / 28);
      const [a, b] = [await q.encode(px, 2), await f.encode(px, 2)];
      assert.notDeepEqual(a.mu, b.mu);
      for (let i = 0; i < a.mu.length; i++) assert.ok(Math.abs(a.mu[i] - b.mu[i]) < 0.5);
    } finally {
      await q.close();
      await f.close();
    }
  }
});

Deno.test("loadModel() refuses precision int8 for a bundle without an int8 graph, and a damaged int8 file", async () => {
  await assert.rejects(
    loadModel(TINY, { backend: native, maxBatch: 8, precision: "int8" }),
    bundleError(/field "int8": is missing, so the bundle has no int8 graph/),
  );
  const root = await mkdtemp(join(tmpdir(), "model-test-"));
  try {
    const dir = join(root, "b");
    await cp(TINY_INT8, dir, { recursive: true });
    const bytes = await readFile(join(dir, "model.int8.onnx"));
    bytes[bytes.length - 10] ^= 0xff;
    await writeFile(join(dir, "model.int8.onnx"), bytes);
    await assert.rejects(
      loadModel(dir, { backend: native, maxBatch: 8 }),
      bundleError(/model\.int8\.onnx: sha256 is/),
    );
  } finally {
    await rm(root, { recursive: true });
  }
});
