/**
 * A server following a remote registry downloads only the files it reads (bundle/served.ts):
 * on a real HTTP registry over loopback holding the committed model (fp32 and int8 graphs)
 * plus a trainer checkpoint, the edge's in-memory source and the service's cached source ask
 * for the serving graph of their precision, the decoder and the small served files, never
 * checkpoint.bin nor the other graph, and what they got loads and passes the probe.
 */
import assert from "node:assert/strict";
import { cp, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { servedBy, servedRoles } from "../bundle/mod.ts";
import { activateVersion } from "../registry/registry_write.ts";
import { serveRegistry } from "../testkit/edge_process.ts";
import { addCheckpoint, manifestOf, TINY_BUNDLE } from "../testkit/fixtures.ts";
import { defaultConfig } from "./config.ts";
import { MemorySource } from "./edge/memory_source.ts";
import { loadBackend } from "./inference/backend.ts";
import { loadModel, loadModelFromMemory } from "./inference/model.ts";
import { sourceOf } from "./source_of.ts";

const MODELS = new URL("../models/fashion-vae/", import.meta.url).pathname;
const VERSION = (await readFile(join(MODELS, "CURRENT"), "utf8")).trim();
const { backend } = await loadBackend("native", { threads: 1 });

/** A registry holding the committed version, which carries its trainer checkpoint. */
async function registryWithCheckpoint(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "served-files-"));
  const dir = join(root, "fashion-vae", VERSION);
  await cp(join(MODELS, VERSION), dir, { recursive: true });
  if (!manifestOf(dir).files.some((f) => f.role === "checkpoint")) await addCheckpoint(dir);
  await activateVersion(root, "fashion-vae", VERSION, "publish");
  return root;
}

/** The files of the version asked for, in order (CURRENT and the manifest left out). */
const filesAsked = (seen: string[]) =>
  seen.filter((p) => p.includes(`/${VERSION}/`) && !p.endsWith("/manifest.json"))
    .map((p) => p.slice(p.lastIndexOf("/") + 1)).sort();

Deno.test("servedRoles(): the graph of the precision, the decoder and the served files, never the checkpoint", () => {
  const m = manifestOf(join(MODELS, VERSION));
  assert.ok(m.files.some((f) => f.role === "checkpoint"), "the default bundle carries its weights");
  // Published over the previous default: the gate's evaluation and the latent translation.
  const files = ["decoder", "latent-map", "samples"];
  const published = ["evaluation", "latent-translation"];
  assert.deepEqual(servedRoles(m, "auto"), [...files, "model-int8", ...published]);
  assert.deepEqual(servedRoles(m, "int8"), [...files, "model-int8", ...published]);
  assert.deepEqual(servedRoles(m, "fp32"), ["model", ...files, ...published]);
  // Without an int8 graph every choice names the fp32 one (the loader refuses "int8" itself).
  assert.deepEqual(servedRoles(manifestOf(TINY_BUNDLE), "int8"), [
    "model",
    "decoder",
    "latent-map",
  ]);
});

Deno.test("the edge's MemorySource downloads the int8 graph and the served files, not checkpoint.bin or model.onnx", async () => {
  const root = await registryWithCheckpoint();
  const seen: string[] = [];
  const server = serveRegistry(root, seen);
  try {
    const config = defaultConfig({ registry: `http://127.0.0.1:${server.addr.port}/` });
    const source = new MemorySource(config.registry, "fashion-vae", fetch, servedBy("auto"));
    const bundle = source.take(await source.localDir(await source.current()));
    const expected = [
      "decoder.onnx",
      "evaluation.json",
      "latent-map.json",
      "latent-translation.json",
      "model.int8.onnx",
      "samples.json",
    ];
    assert.deepEqual([...bundle.files.keys()].sort(), expected);
    assert.deepEqual(filesAsked(seen), expected, seen.join("\n"));
    const model = await loadModelFromMemory(bundle, { backend, maxBatch: 8 });
    try {
      assert.equal(model.precision, "int8");
      assert.equal(model.probe?.cases, bundle.manifest.int8!.probe.cases.length);
    } finally {
      await model.close();
    }
  } finally {
    await server.shutdown();
    await rm(root, { recursive: true });
  }
});

Deno.test("the service's HTTP source at --precision fp32 caches model.onnx and the served files only, and serves from them", async () => {
  const root = await registryWithCheckpoint();
  const cacheDir = await mkdtemp(join(tmpdir(), "served-cache-"));
  const seen: string[] = [];
  const server = serveRegistry(root, seen);
  try {
    const config = defaultConfig({
      registry: `http://127.0.0.1:${server.addr.port}/`,
      model: "fashion-vae",
      cacheDir,
      precision: "fp32",
    });
    const source = await sourceOf(config, {});
    const ref = await source.current();
    const dir = await source.localDir(ref);
    const expected = [
      "decoder.onnx",
      "evaluation.json",
      "latent-map.json",
      "latent-translation.json",
      "model.onnx",
      "samples.json",
    ];
    assert.deepEqual(filesAsked(seen), expected, seen.join("\n"));
    assert.deepEqual((await readdir(dir)).sort(), [...expected, "manifest.json"].sort());
    const model = await loadModel(dir, { backend, maxBatch: 8, precision: "fp32" });
    try {
      assert.equal(model.precision, "fp32");
      assert.equal(model.probe?.cases, manifestOf(dir).probe.cases.length);
    } finally {
      await model.close();
    }
    // The partial copy counts as intact for this server: another source downloads nothing.
    const asked = seen.length;
    assert.equal(await (await sourceOf(config, {})).localDir(ref), dir);
    assert.equal(seen.length, asked, "nothing is downloaded again");
    // A server of the int8 graph checks that graph, which this copy lacks.
    await assert.rejects(
      loadModel(dir, { backend, maxBatch: 8, precision: "int8" }),
      /model\.int8\.onnx: is listed in the manifest \(role "model-int8"\) but cannot be read/,
    );
  } finally {
    await server.shutdown();
    await rm(root, { recursive: true });
    await rm(cacheDir, { recursive: true });
  }
});
