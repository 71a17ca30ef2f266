/**
 * The bundle written for a fixed seed and fixed data must not change by accident: a refactor of
 * the exporter, the manifest or the bundle writer that changes a byte shows up here. The golden
 * record (testdata/golden-bundle.json) holds each file's sha256 and the manifest; regenerate it
 * with GOLDEN_UPDATE=1 only for a deliberate change of the format, and say why in the commit.
 *
 * The ONNX files hold weights only (seeded initialisation, no training), so their bytes are the
 * same on every CPU. The JSON files carry onnxruntime outputs (probe, metrics, map points), which
 * can differ in the last float bits between CPUs: those are compared within 1e-6 when the bytes
 * differ.
 */
import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { bundleFixture } from "./_bundle_fixture.ts";
import { writeBundle } from "./bundle.ts";
import { TINY_VAE } from "./model.ts";

const GOLDEN = new URL("./testdata/golden-bundle.json", import.meta.url);
const FILES = ["model.onnx", "decoder.onnx", "latent-map.json", "manifest.json"];

interface Golden {
  sha256: Record<string, string>;
  json: Record<string, unknown>;
}

const fx = bundleFixture("golden-bundle-");

function closeTo(a: unknown, b: unknown, path: string): void {
  if (typeof a === "number" && typeof b === "number") {
    assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${path}: ${a} vs ${b}`);
  } else if (Array.isArray(a) && Array.isArray(b)) {
    assert.equal(a.length, b.length, `${path}: length`);
    a.forEach((x, i) => closeTo(x, b[i], `${path}[${i}]`));
  } else if (a && b && typeof a === "object" && typeof b === "object") {
    assert.deepEqual(Object.keys(a), Object.keys(b), `${path}: keys`);
    for (const k of Object.keys(a)) {
      closeTo((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
    }
  } else {
    assert.deepEqual(a, b, path);
  }
}

test("writeBundle() for a fixed seed and data writes the golden bundle", async () => {
  const dir = join(fx.work, "bundle");
  tf.engine().startScope();
  try {
    await writeBundle(dir, {
      ...fx.options(TINY_VAE, { note: "untrained golden model" }),
      now: new Date("2026-12-01T12:00:00.000Z"),
    });
  } finally {
    tf.engine().endScope();
  }
  const bytes = Object.fromEntries(
    await Promise.all(FILES.map(async (f) => [f, await readFile(join(dir, f))] as const)),
  );
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  const got: Golden = {
    sha256: Object.fromEntries(FILES.map((f) => [f, sha(bytes[f])])),
    json: Object.fromEntries(
      FILES.filter((f) => f.endsWith(".json")).map((f) => [f, JSON.parse(bytes[f].toString())]),
    ),
  };
  if (process.env.GOLDEN_UPDATE === "1") {
    await writeFile(GOLDEN, JSON.stringify(got, null, 1) + "\n");
    return;
  }
  const want = JSON.parse(await readFile(GOLDEN, "utf8")) as Golden;
  for (const f of FILES.filter((f) => f.endsWith(".onnx"))) {
    assert.equal(got.sha256[f], want.sha256[f], `${f} is byte-identical`);
  }
  for (const f of FILES.filter((f) => f.endsWith(".json"))) {
    if (got.sha256[f] !== want.sha256[f]) closeTo(got.json[f], want.json[f], f);
  }
});
