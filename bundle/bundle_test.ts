/**
 * Tests of bundle/ against the committed tiny bundle (tests/testdata/tiny-bundle),
 * and against copies of it corrupted in a temp directory: each defect must be rejected with a
 * message that names the bundle, the file or field, and the problem. Uses node:test and
 * node:assert only, so it runs under both `npx deno test -A common/bundle_test.ts` and
 * `node --import tsx --test common/bundle_test.ts`; onnxruntime-node supplies the runtime.
 */
import assert from "node:assert/strict";
import { copyFile, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import {
  BundleError,
  bundleFile,
  checkProbe,
  checkSessionIO,
  choosePrecision,
  precisionsOf,
  probeOf,
  type ProbeRunner,
  readManifest,
  verifyBundleFiles,
} from "./mod.ts";
import type { Manifest } from "./mod.ts";

const GOOD = join(
  dirname(fileURLToPath(import.meta.url)),
  "..",
  "tests",
  "testdata",
  "tiny-bundle",
);

/** A fresh copy of the good bundle that a test may corrupt. */
async function copyBundle(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "bundle-test-"));
  for (const f of await readdir(GOOD)) await copyFile(join(GOOD, f), join(dir, f));
  return dir;
}

// deno-lint-ignore no-explicit-any -- the tests poke at arbitrary JSON fields, valid or not
async function editManifest(dir: string, edit: (m: Record<string, any>) => void): Promise<void> {
  const path = join(dir, "manifest.json");
  const m = JSON.parse(await readFile(path, "utf8"));
  edit(m);
  await writeFile(path, JSON.stringify(m));
}

async function session(
  dir: string,
  m: Manifest,
  role: "model" | "decoder",
): Promise<ort.InferenceSession> {
  return await ort.InferenceSession.create(await readFile(bundleFile(dir, m, role)));
}

function runner(s: ort.InferenceSession, m: Manifest): ProbeRunner {
  return async (images, n) => {
    const out = await s.run({ [m.input.name]: new ort.Tensor("float32", images, [n, 1, 28, 28]) });
    return {
      probabilities: out[m.outputs.probabilities.name].data as Float32Array,
      mu: out[m.outputs.mu.name].data as Float32Array,
    };
  };
}

async function rejects(p: Promise<unknown> | (() => unknown), ...parts: string[]): Promise<void> {
  let err: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof BundleError, `expected a BundleError, got ${String(err)}`);
  for (const part of parts) {
    assert.ok(
      err.message.includes(part),
      `message ${JSON.stringify(err.message)} should mention ${JSON.stringify(part)}`,
    );
  }
}

test("the committed tiny bundle reads, verifies, reproduces its probe and matches its sessions", async () => {
  const m = await readManifest(GOOD);
  await verifyBundleFiles(GOOD, m);
  const model = await session(GOOD, m, "model");
  const decoder = await session(GOOD, m, "decoder");
  try {
    checkSessionIO(m, model);
    checkSessionIO(m, decoder, { role: "decoder" });
    const report = await checkProbe(m, runner(model, m));
    assert.equal(report.cases, m.probe.cases.length);
    // Same runtime and file as at export: reproduction is essentially exact.
    assert.ok(report.maxAbsDiff <= 1e-6, `probe max abs diff ${report.maxAbsDiff}`);
  } finally {
    await model.release();
    await decoder.release();
  }
});

test("verifyBundleFiles() rejects a truncated ONNX file, naming the file and both sizes", async () => {
  const dir = await copyBundle();
  try {
    const m = await readManifest(dir);
    const entry = m.files.find((f) => f.role === "model")!;
    await truncate(join(dir, entry.path), 1000);
    await rejects(
      verifyBundleFiles(dir, m),
      dir,
      "model.onnx",
      "1000 bytes",
      String(entry.bytes),
      "truncated",
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("verifyBundleFiles() rejects a file whose sha256 differs, naming both hashes", async () => {
  const dir = await copyBundle();
  try {
    const m = await readManifest(dir);
    const entry = m.files.find((f) => f.role === "decoder")!;
    const path = join(dir, entry.path);
    const bytes = await readFile(path);
    bytes[bytes.length - 1] ^= 0xff; // same size, different content
    await writeFile(path, bytes);
    await rejects(verifyBundleFiles(dir, m), dir, "decoder.onnx", "sha256", entry.sha256);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("verifyBundleFiles() rejects a listed file that is missing", async () => {
  const dir = await copyBundle();
  try {
    const m = await readManifest(dir);
    await rm(join(dir, "latent-map.json"));
    await rejects(verifyBundleFiles(dir, m), dir, "latent-map.json", "cannot be read");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("readManifest() rejects a manifest missing a field, naming the field", async () => {
  const dir = await copyBundle();
  try {
    await editManifest(dir, (m) => delete m.latentSize);
    await rejects(readManifest(dir), dir, "manifest.json", '"latentSize"', "missing");
    await editManifest(dir, (m) => {
      m.latentSize = 2;
      delete m.probe.cases[3].mu;
    });
    await rejects(readManifest(dir), "probe.cases[3].mu", "missing");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("readManifest() rejects a wrong input shape in the manifest", async () => {
  const dir = await copyBundle();
  try {
    await editManifest(dir, (m) => (m.input.shape = ["N", 3, 28, 28]));
    await rejects(readManifest(dir), dir, '"input.shape"', '["N",1,28,28]');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("readManifest() rejects a missing or malformed manifest.json", async () => {
  const dir = await copyBundle();
  try {
    await writeFile(join(dir, "manifest.json"), "{ not json");
    await rejects(readManifest(dir), dir, "manifest.json", "not valid JSON");
    await rm(join(dir, "manifest.json"));
    await rejects(readManifest(dir), dir, "manifest.json", "cannot be read");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("checkSessionIO() rejects a session whose shapes or names differ from the manifest", async () => {
  const m = await readManifest(GOOD);
  const model = await session(GOOD, m, "model");
  const decoder = await session(GOOD, m, "decoder");
  try {
    // A manifest claiming a 3-D latent for a model that has 2 (validates on its own).
    const wrongLatent = structuredClone(m);
    wrongLatent.outputs.mu.shape = ["N", 3];
    await rejects(
      () => checkSessionIO(wrongLatent, model, { dir: "B" }),
      "Bundle B",
      "model.onnx",
      'output "mu"',
      '["N",2]',
      '["N",3]',
    );
    const wrongInput = structuredClone(m);
    wrongInput.input.name = "pixels_in";
    await rejects(
      () => checkSessionIO(wrongInput, model),
      "model.onnx",
      "lacks input",
      '"pixels_in"',
      "image",
    );
    // The decoder session is not the model: it lacks the model's tensors.
    await rejects(() => checkSessionIO(m, decoder), "model.onnx", "lacks input", '"image"');
    const wrongDecoder = structuredClone(m);
    wrongDecoder.decoder!.output.shape = ["N", 32, 32];
    await rejects(
      () => checkSessionIO(wrongDecoder, decoder, { role: "decoder" }),
      "decoder.onnx",
      'output "pixels"',
      '["N",32,32]',
    );
  } finally {
    await model.release();
    await decoder.release();
  }
});

test("checkProbe() rejects a probe that does not reproduce within tolerance, or a different top label", async () => {
  const m = await readManifest(GOOD);
  const model = await session(GOOD, m, "model");
  try {
    const run = runner(model, m);
    const shifted = structuredClone(m);
    shifted.probe.cases[2].mu[1] += 0.01;
    await rejects(
      checkProbe(shifted, run, "B"),
      "Bundle B",
      "probe case 2",
      "mu[1]",
      "tolerance 0.0001",
    );

    const relabelled = structuredClone(m);
    const c = relabelled.probe.cases[5];
    c.index = (c.index + 1) % m.labels.length;
    await rejects(
      checkProbe(relabelled, run),
      "probe case 5",
      `recorded ${c.index}`,
      m.labels[c.index],
    );

    // A runtime that drifts (e.g. other preprocessing) is caught even when argmax survives.
    const drifting: ProbeRunner = async (x, n) => {
      const out = await run(x, n);
      return { probabilities: out.probabilities, mu: out.mu.map((v) => v + 1e-3) };
    };
    await rejects(checkProbe(m, drifting), "probe case 0", "mu[0]", "exceeds tolerance");

    const failing: ProbeRunner = () => Promise.reject(new Error("session closed"));
    await rejects(checkProbe(m, failing), "failed to run", "session closed");
  } finally {
    await model.release();
  }
});

test("readManifest() checks the int8 section: its role must name a file, its probe is validated", async () => {
  const INT8 = join(dirname(GOOD), "tiny-bundle-int8");
  const m = await readManifest(INT8);
  assert.deepEqual(precisionsOf(m), ["fp32", "int8"]);
  assert.equal(choosePrecision(m, "auto", INT8), "int8");
  assert.equal(probeOf(m, "int8"), m.int8!.probe);
  const dir = await mkdtemp(join(tmpdir(), "bundle-test-"));
  try {
    for (const f of await readdir(INT8)) await copyFile(join(INT8, f), join(dir, f));
    await editManifest(dir, (x) => (x.int8.role = "model-fp16"));
    await rejects(readManifest(dir), 'field "int8.role"', '"model-fp16", which no entry');
    await editManifest(dir, (x) => {
      x.int8.role = "model-int8";
      x.int8.probe.cases[1].mu = [1];
    });
    await rejects(readManifest(dir), 'field "int8.probe.cases[1].mu"', "must have");
  } finally {
    await rm(dir, { recursive: true });
  }
});
