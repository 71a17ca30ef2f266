/**
 * The tiny bundle's serving graph on onnxruntime-node through graphOfSession, run over a set
 * by bundle/encode_set.ts: the outputs are the reference outputs recorded at export, whatever
 * the batch size, and encodeEach hands out every image once, at its offset.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import {
  bundleFile,
  decodeProbePixels,
  encodeEach,
  encodeSet,
  readManifest,
  servingNames,
} from "../bundle/mod.ts";
import { TINY_BUNDLE, TINY_EXPECTED } from "../testkit/fixtures.ts";
import { nodeGraphRuntime } from "./ort_node.ts";

interface ExpectedCase {
  pixels: string;
  probabilities: number[];
  mu: number[];
  logvar: number[];
}

const expected = JSON.parse(readFileSync(TINY_EXPECTED, "utf8"));
const cases: ExpectedCase[] = expected.model.cases;
const TOL = expected.tolerance.probabilities as number;
/** The five reference images, twice: 10 images, so batches of 3 end in a short one. */
const images = new Uint8Array(10 * 784);
for (let i = 0; i < 10; i++) images.set(decodeProbePixels(cases[i % 5].pixels), i * 784);

function near(got: Float32Array, want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  got.forEach((v, i) =>
    assert.ok(Math.abs(v - want[i]) <= TOL, `${what}[${i}]: ${v} vs ${want[i]}`)
  );
}

test("encodeSet() on onnxruntime-node reproduces the recorded outputs in batches of 3 and of 500", async () => {
  const manifest = await readManifest(TINY_BUNDLE);
  const graph = await nodeGraphRuntime().open(
    readFileSync(bundleFile(TINY_BUNDLE, manifest, "model")),
  );
  try {
    const K = manifest.labels.length, L = manifest.latentSize;
    const small = await encodeSet(graph, servingNames(manifest), images, 10, 3);
    const whole = await encodeSet(graph, servingNames(manifest), images, 10);
    assert.equal(small.count, 10);
    assert.deepEqual([small.probabilities.length, small.mu.length, small.logvar.length], [
      10 * K,
      10 * L,
      10 * L,
    ]);
    for (let i = 0; i < 10; i++) {
      const c = cases[i % 5];
      near(small.probabilities.subarray(i * K, (i + 1) * K), c.probabilities, `p${i}`);
      near(small.mu.subarray(i * L, (i + 1) * L), c.mu, `mu${i}`);
      near(small.logvar.subarray(i * L, (i + 1) * L), c.logvar, `logvar${i}`);
    }
    for (const key of ["probabilities", "mu", "logvar"] as const) {
      const d = small[key].reduce((m, v, i) => Math.max(m, Math.abs(v - whole[key][i])), 0);
      assert.ok(d <= 1e-6, `${key}: batch 3 vs 500 differ by ${d}`);
    }
  } finally {
    await graph.release();
  }
});

test("encodeEach() hands out each batch once, at its offset, with its normalised pixels", async () => {
  const manifest = await readManifest(TINY_BUNDLE);
  const graph = await nodeGraphRuntime().open(
    readFileSync(bundleFile(TINY_BUNDLE, manifest, "model")),
  );
  try {
    const seen: [number, number][] = [];
    await encodeEach(graph, servingNames(manifest), images, 10, (b) => {
      seen.push([b.start, b.count]);
      assert.equal(b.images.length, b.count * 784);
      assert.equal(b.images[300], Math.fround(images[b.start * 784 + 300] / 255));
      assert.equal(b.mu.length, b.count * manifest.latentSize);
    }, 4);
    assert.deepEqual(seen, [[0, 4], [4, 4], [8, 2]]);
  } finally {
    await graph.release();
  }
});
