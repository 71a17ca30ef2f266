import assert from "node:assert/strict";
import { BundleError } from "../../bundle/mod.ts";
import { loadBackend } from "../inference/backend.ts";
import { loadModelFromMemory } from "../inference/model.ts";
import { MemorySource } from "./memory_source.ts";

const TINY = new URL("../../tests/testdata/tiny-bundle/", import.meta.url);
const VERSION = JSON.parse(Deno.readTextFileSync(new URL("manifest.json", TINY))).version;
const BASE = "https://registry.test/models/";

/** A registry serving the tiny bundle as fashion-vae's CURRENT; `alter` may change a file. */
function registryFetch(
  alter?: (path: string, bytes: Uint8Array<ArrayBuffer>) => Uint8Array<ArrayBuffer>,
): typeof fetch {
  return ((input: string | URL | Request) => {
    const path = String(input instanceof Request ? input.url : input).slice(BASE.length);
    if (path === "fashion-vae/CURRENT") return Promise.resolve(new Response(VERSION + "\n"));
    const file = path.startsWith(`fashion-vae/${VERSION}/`) ? path.split("/")[2] : null;
    try {
      const bytes = Deno.readFileSync(new URL(file ?? "missing", TINY));
      return Promise.resolve(new Response(alter ? alter(file!, bytes) : bytes));
    } catch {
      return Promise.resolve(new Response("not found", { status: 404 }));
    }
  }) as typeof fetch;
}

const { backend } = await loadBackend("native", { threads: 1 });

Deno.test("MemorySource downloads a version into memory, hands it out once, and it loads like a directory", async () => {
  const source = new MemorySource(BASE, "fashion-vae", registryFetch());
  const ref = await source.current();
  assert.deepEqual(ref, { name: "fashion-vae", version: VERSION });
  const label = await source.localDir(ref);
  assert.equal(label, `${BASE}fashion-vae/${VERSION}/`);
  const bundle = source.take(label);
  assert.deepEqual([...bundle.files.keys()].sort(), [
    "decoder.onnx",
    "latent-map.json",
    "model.onnx",
  ]);
  assert.throws(() => source.take(label), /No downloaded bundle/);
  const model = await loadModelFromMemory(bundle, { backend, maxBatch: 8 });
  try {
    assert.equal(model.version, VERSION);
    assert.equal(model.probe?.cases, 8);
    assert.ok(model.hasDecoder);
  } finally {
    await model.close();
  }
  assert.deepEqual(await source.versions(), [{
    version: VERSION,
    active: true,
    hasManifest: true,
  }]);
});

Deno.test("a file served with other bytes than the manifest's is refused, naming its URL", async () => {
  const flip = (path: string, b: Uint8Array<ArrayBuffer>) => {
    if (path !== "model.onnx") return b;
    const c = b.slice();
    c[100] ^= 1;
    return c;
  };
  const source = new MemorySource(BASE, "fashion-vae", registryFetch(flip));
  await assert.rejects(
    source.localDir(await source.current()),
    new RegExp(
      `${BASE}fashion-vae/${VERSION}/model.onnx: got \\d+ bytes with sha256 [0-9a-f]{64}, the manifest expects`,
    ),
  );
});

Deno.test("loadModelFromMemory() re-verifies sha256 and names the bundle and file", async () => {
  const source = new MemorySource(BASE, "fashion-vae", registryFetch());
  const bundle = source.take(await source.localDir(await source.current()));
  const good = bundle.files.get("decoder.onnx")!;
  const decoder = good.slice();
  decoder[0] ^= 1;
  bundle.files.set("decoder.onnx", decoder);
  await assert.rejects(
    loadModelFromMemory(bundle, { backend, maxBatch: 8 }),
    (e) =>
      e instanceof BundleError &&
      /decoder\.onnx: sha256 is [0-9a-f]+, the manifest expects/.test(e.message) &&
      e.message.startsWith(`Bundle ${BASE}fashion-vae/${VERSION}/`),
  );
  bundle.files.set("decoder.onnx", good);
  bundle.files.delete("latent-map.json");
  await assert.rejects(
    loadModelFromMemory(bundle, { backend, maxBatch: 8 }),
    /latent-map\.json: is listed in the manifest .* but was not downloaded/,
  );
});

Deno.test("MemorySource downloads the next version into the buffers recycle() gave back", async () => {
  const source = new MemorySource(BASE, "fashion-vae", registryFetch());
  const ref = await source.current();
  const first = source.take(await source.localDir(ref));
  const sizes = [...first.files.values()].map((b) => b.length);
  assert.equal(source.pool.bytes, 0);
  source.recycle(first);
  assert.equal(source.pool.bytes, sizes.reduce((a, b) => a + b));
  const second = source.take(await source.localDir(ref));
  assert.equal(source.pool.bytes, 0, "every file was read into a recycled buffer");
  assert.deepEqual([...second.files.values()].map((b) => b.length), sizes);
  const model = await loadModelFromMemory(second, { backend, maxBatch: 8 });
  await model.close();
});
