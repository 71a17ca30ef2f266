/**
 * scripts/serving_modules.ts, which decides what of node_modules goes into the serving image:
 * the closure of the serving packages from the real package-lock.json, and the file filter.
 */
import assert from "node:assert/strict";
import { dependencyClosure, dropped, SERVING_ROOTS } from "../scripts/serving_modules.ts";

const lock = JSON.parse(
  Deno.readTextFileSync(new URL("../package-lock.json", import.meta.url).pathname),
);

Deno.test("dependencyClosure() holds the serving packages and their dependencies only", () => {
  const keys = dependencyClosure(lock);
  for (const r of SERVING_ROOTS) assert.ok(keys.includes(`node_modules/${r}`), r);
  // Resolved dependencies, nested where npm nested them.
  assert.ok(keys.includes("node_modules/onnxruntime-common"));
  assert.ok(keys.some((k) => k.startsWith("node_modules/@smithy/")));
  for (const k of keys) {
    assert.doesNotMatch(
      k,
      /@tensorflow|\/vega|playwright|\/tsx$|esbuild|\/deno$|@deno\/|s3rver/,
      k,
    );
  }
});

Deno.test("dependencyClosure() names a dependency missing from the lock", () => {
  const broken = { packages: { "node_modules/a": { dependencies: { b: "1" } } } };
  assert.throws(() => dependencyClosure(broken, ["a"]), /node_modules\/a needs b/);
  assert.throws(() => dependencyClosure(broken, ["zzz"]), /no zzz: run npm ci/);
});

Deno.test("dropped() keeps linux-x64 onnxruntime and the one onnxruntime-web build Deno loads", () => {
  const keep = [
    "onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1",
    "onnxruntime-node/dist/index.js",
    "onnxruntime-web/dist/ort.node.min.mjs",
    "onnxruntime-web/dist/ort-wasm-simd-threaded.wasm",
    "onnxruntime-web/dist/ort-wasm-simd-threaded.mjs",
    "onnxruntime-web/package.json",
    "hono/dist/index.js",
    "hono/LICENSE.md",
  ];
  const drop = [
    "onnxruntime-node/bin/napi-v6/linux/arm64/libonnxruntime.so.1",
    "onnxruntime-node/bin/napi-v6/win32/x64/DirectML.dll",
    "onnxruntime-node/bin/napi-v6/darwin/arm64/libonnxruntime.1.dylib",
    "onnxruntime-node/script/install.js",
    "onnxruntime-web/dist/ort-wasm-simd-threaded.jsep.wasm",
    "onnxruntime-web/dist/ort.webgpu.min.mjs",
    "onnxruntime-web/dist/ort.min.js.map",
    "@aws-sdk/client-s3/dist-types/index.d.ts",
    "hono/README.md",
  ];
  for (const p of keep) assert.equal(dropped(p), false, p);
  for (const p of drop) assert.equal(dropped(p), true, p);
});
