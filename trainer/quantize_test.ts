/**
 * The int8 quantizer on the committed tiny bundle and real Fashion-MNIST images: the QDQ
 * rewrite keeps every weight within half a quantization step, onnxruntime fuses it into integer
 * kernels, addInt8 writes a bundle both graphs of which pass the publisher's acceptance check,
 * a rerun changes no byte, and a bundle that fails verification is left untouched.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import pkg from "onnx-proto";
import { INT8_FILE, INT8_ROLE, readManifest } from "../bundle/mod.ts";
import { loadFashionMnist } from "./data.ts";
import { addInt8, calibrate, quantizeServing } from "./quantize.ts";
import { uint8Params, WEIGHT_QMAX } from "./export/quantize.ts";
import { verifyWithOnnxRuntime } from "./publish.ts";

const { onnx } = pkg;
const TINY = fileURLToPath(new URL("../tests/testdata/tiny-bundle", import.meta.url));
const data = loadFashionMnist();
const calibration = { images: data.train.images.subarray(0, 500 * 784), count: 500 };
const testSplit = {
  images: data.test.images.subarray(0, 1000 * 784),
  labels: data.test.labels.subarray(0, 1000),
  count: 1000,
};
const opts = { calibration, calibrationSource: "first 500 training images", test: testSplit };

async function copyTiny(): Promise<{ root: string; dir: string }> {
  const root = await mkdtemp(join(tmpdir(), "quantize-test-"));
  const dir = join(root, "b");
  await cp(TINY, dir, { recursive: true });
  return { root, dir };
}

function floats(t: { rawData?: Uint8Array | null }): Float32Array {
  const r = t.rawData!;
  return new Float32Array(r.buffer.slice(r.byteOffset, r.byteOffset + r.length));
}

test("uint8Params() covers the range with zero exact, and a relu range gets zero point 0", () => {
  assert.deepEqual(uint8Params({ min: 0, max: 2.55 }), { scale: Math.fround(0.01), zeroPoint: 0 });
  const p = uint8Params({ min: -1, max: 3 });
  assert.equal(p.zeroPoint, 64); // round(1 / (4 / 255))
  assert.deepEqual(uint8Params({ min: 0, max: 0 }), { scale: 1, zeroPoint: 0 });
});

test("the QDQ graph holds per-channel 7-bit int8 weights within half a step, int32 biases, and no Relu after quantized ops", async () => {
  const fp32Bytes = new Uint8Array(await readFile(join(TINY, "model.onnx")));
  const fp32 = onnx.ModelProto.decode(fp32Bytes).graph!;
  const q = onnx.ModelProto.decode(await quantizeServing(fp32Bytes, calibration, "image")).graph!;
  const init = new Map(q.initializer!.map((t) => [t.name!, t]));
  let checked = 0;
  for (const w of fp32.initializer!.filter((t) => init.has(`${t.name}.int8`))) {
    const qt = init.get(`${w.name}.int8`)!;
    const scales = floats(init.get(`${w.name}.scale`)!);
    const v = new Int8Array(qt.rawData!.buffer, qt.rawData!.byteOffset, qt.rawData!.length);
    const wf = floats(w);
    const dims = w.dims!.map(Number);
    // Conv [M,C,kh,kw] has channels on axis 0, Gemm [K,N] on axis 1.
    const conv = dims.length === 4;
    const inner = conv ? dims.slice(1).reduce((a, b) => a * b, 1) : 1;
    wf.forEach((x, i) => {
      const s = scales[conv ? Math.floor(i / inner) : i % dims[1]];
      assert.ok(Math.abs(v[i] * s - x) <= s / 2 + 1e-9, `${w.name}[${i}]`);
    });
    assert.equal(scales.length, conv ? dims[0] : dims[1]);
    // 7-bit weights: a uint8 x int8 pair sum must fit int16 on CPUs without VNNI.
    assert.ok(v.every((x) => Math.abs(x) <= WEIGHT_QMAX), `${w.name} exceeds +-${WEIGHT_QMAX}`);
    assert.ok(v.some((x) => Math.abs(x) === WEIGHT_QMAX), `${w.name} does not use its range`);
    assert.ok(255 * WEIGHT_QMAX * 2 <= 32767);
    checked++;
  }
  assert.ok(checked >= 2, `only ${checked} weights were quantized`);
  const biases = q.initializer!.filter((t) => t.name!.endsWith(".int32"));
  assert.ok(biases.every((t) => t.dataType === onnx.TensorProto.DataType.INT32));
  assert.equal(biases.length, checked);
  // Relu survives only in the fp32 part (the head on mu).
  const relus = q.node!.filter((n) => n.opType === "Relu").length;
  assert.ok(relus < fp32.node!.filter((n) => n.opType === "Relu").length);
});

test("onnxruntime fuses the int8 graph into QLinearConv and QGemm with no float Conv left", async () => {
  const root = await mkdtemp(join(tmpdir(), "quantize-fuse-"));
  try {
    const fp32 = new Uint8Array(await readFile(join(TINY, "model.onnx")));
    const out = join(root, "optimized.onnx");
    const s = await ort.InferenceSession.create(await quantizeServing(fp32, calibration, "image"), {
      intraOpNumThreads: 1,
      optimizedModelFilePath: out,
    });
    await s.release();
    const ops = onnx.ModelProto.decode(await readFile(out)).graph!.node!.map((n) => n.opType);
    assert.ok(ops.includes("QLinearConv"), ops.join(","));
    assert.ok(ops.includes("QGemm"), ops.join(","));
    assert.ok(!ops.includes("Conv"), ops.join(","));
  } finally {
    await rm(root, { recursive: true });
  }
});

test("addInt8() adds a graph both acceptance checks pass, within 1 point of fp32, and a rerun changes no byte", async () => {
  const { root, dir } = await copyTiny();
  try {
    const m = await addInt8(dir, opts);
    const f = m.files.find((x) => x.role === INT8_ROLE)!;
    assert.equal(f.path, INT8_FILE);
    assert.ok(f.bytes < m.files.find((x) => x.role === "model")!.bytes);
    const q = m.int8!.metrics;
    assert.equal(q.evaluatedOn, 1000);
    assert.ok(Math.abs(q.testAccuracy - (q.fp32TestAccuracy as number)) <= 0.01, JSON.stringify(q));
    assert.equal(m.int8!.probe.cases.length, m.probe.cases.length);
    await verifyWithOnnxRuntime(dir, await readManifest(dir));
    const before = await Promise.all(
      [INT8_FILE, "manifest.json"].map((p) => readFile(join(dir, p))),
    );
    await addInt8(dir, opts);
    const after = await Promise.all(
      [INT8_FILE, "manifest.json"].map((p) => readFile(join(dir, p))),
    );
    assert.deepEqual(after, before);
  } finally {
    await rm(root, { recursive: true });
  }
});

test("the acceptance check refuses an int8 graph whose probe is not reproduced, naming it", async () => {
  const { root, dir } = await copyTiny();
  try {
    await addInt8(dir, opts);
    const m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
    m.int8.probe.cases[0].mu[0] += 0.5;
    await writeFile(join(dir, "manifest.json"), JSON.stringify(m));
    await assert.rejects(
      verifyWithOnnxRuntime(dir, await readManifest(dir)),
      /probe case 0: mu\[0\]/,
    );
  } finally {
    await rm(root, { recursive: true });
  }
});

test("addInt8() leaves a bundle that fails verification untouched", async () => {
  const { root, dir } = await copyTiny();
  try {
    await writeFile(join(dir, "decoder.onnx"), "not the decoder");
    const before = (await readdir(dir)).sort();
    const manifest = await readFile(join(dir, "manifest.json"));
    await assert.rejects(addInt8(dir, opts), /decoder\.onnx: has \d+ bytes/);
    assert.deepEqual((await readdir(dir)).sort(), before);
    assert.deepEqual(await readFile(join(dir, "manifest.json")), manifest);
  } finally {
    await rm(root, { recursive: true });
  }
});

test("calibrate() measures relu outputs as non-negative ranges", async () => {
  const fp32 = new Uint8Array(await readFile(join(TINY, "model.onnx")));
  const ranges = await calibrate(fp32, calibration);
  const names = Object.keys(ranges);
  assert.ok(names.length >= 2);
  for (const r of Object.values(ranges)) assert.ok(r.min >= 0 && r.max > 0, JSON.stringify(r));
});
