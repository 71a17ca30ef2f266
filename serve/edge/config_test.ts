import assert from "node:assert/strict";
import { edgeConfig } from "./config.ts";

const ROOT = new URL("file:///srv/app/");

Deno.test("edgeConfig() defaults to the registry directory beside the code, polled every 5 s, wasm with 1 thread", () => {
  const c = edgeConfig({}, ROOT);
  assert.deepEqual(c.source, { kind: "dir", dir: "/srv/app/models/", model: undefined });
  assert.equal(c.pollMs, 5000);
  assert.equal(c.serve.backend, "wasm");
  assert.equal(c.serve.threads, 1);
  assert.equal(c.serve.maxBatch, 256);
});

Deno.test("edgeConfig() reads an HTTP registry, a bundle, the poll interval and the batch limit", () => {
  const http = edgeConfig({
    LATENT_EDGE_REGISTRY: "https://cdn.example/models/",
    LATENT_EDGE_POLL_MS: "100",
  }, ROOT);
  assert.deepEqual(http.source, {
    kind: "http",
    url: "https://cdn.example/models/",
    model: "fashion-vae",
  });
  assert.equal(http.pollMs, 100);
  const bundle = edgeConfig({ LATENT_EDGE_BUNDLE: "b", LATENT_EDGE_MAX_BATCH: "8" }, ROOT);
  assert.deepEqual(bundle.source, { kind: "bundle", dir: "b" });
  assert.equal(bundle.serve.bundle, "b");
  assert.equal(bundle.serve.maxBatch, 8);
});

Deno.test("edgeConfig() refuses conflicting, malformed or unknown settings, naming them", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ LATENT_EDGE_REGISTRY: "https://x/", LATENT_EDGE_BUNDLE: "b" }, /not both/],
    [{ LATENT_EDGE_REGISTRY: "/models" }, /LATENT_EDGE_REGISTRY must be an http\(s\):\/\/ URL/],
    [{ LATENT_EDGE_POLL_MS: "soon" }, /LATENT_EDGE_POLL_MS must be a non-negative integer/],
    [{ LATENT_EDGE_MAX_BATCH: "0" }, /LATENT_EDGE_MAX_BATCH must be >= 1/],
    [{ LATENT_EDGE_POLLMS: "5" }, /Unknown setting\(s\) LATENT_EDGE_POLLMS/],
  ];
  for (const [env, message] of cases) assert.throws(() => edgeConfig(env, ROOT), message);
});
