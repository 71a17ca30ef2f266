import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { resolveActive } from "../registry/registry.ts";
import {
  FIXTURES,
  makeRegistry,
  manifestOf,
  MODEL,
  probeImages,
  TINY_BUNDLE,
  TINY_EXPECTED,
  VERSIONS,
} from "./fixtures.ts";

Deno.test("the fixtures exist: three bundles of one model with distinct versions", () => {
  assert.equal(FIXTURES[0], TINY_BUNDLE);
  assert.ok(existsSync(TINY_EXPECTED));
  assert.equal(new Set(VERSIONS).size, 3);
  for (const dir of FIXTURES) assert.equal(manifestOf(dir).name, MODEL);
  const images = probeImages();
  assert.equal(images.length, 24);
  assert.ok(images.every((im) => im.length === 784));
});

Deno.test("makeRegistry() holds every fixture, CURRENT on the first; cleanup() removes it", async () => {
  const { root, cleanup } = await makeRegistry();
  try {
    const active = await resolveActive(root, MODEL);
    assert.equal(active.version, VERSIONS[0]);
    for (const v of VERSIONS) assert.ok(existsSync(join(root, MODEL, v, "manifest.json")), v);
  } finally {
    await cleanup();
  }
  assert.equal(existsSync(root), false);
});
