import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { listModels, listVersions, RegistryError, resolveActive } from "./registry.ts";

async function tempRegistry(): Promise<string> {
  return await mkdtemp(join(tmpdir(), "registry-test-"));
}

async function addVersion(
  root: string,
  name: string,
  version: string,
  manifest = true,
): Promise<void> {
  await mkdir(join(root, name, version), { recursive: true });
  if (manifest) await writeFile(join(root, name, version, "manifest.json"), "{}");
}

function code(c: string) {
  return (e: unknown) => e instanceof RegistryError && e.code === c;
}

test("resolveActive() follows CURRENT of the only model when no name is given", async () => {
  const root = await tempRegistry();
  try {
    await addVersion(root, "vae", "v1");
    await addVersion(root, "vae", "v2");
    await writeFile(join(root, "vae", "CURRENT"), "v2\n");
    assert.deepEqual(await resolveActive(root), {
      name: "vae",
      version: "v2",
      dir: join(root, "vae", "v2"),
    });
    assert.equal((await resolveActive(root, "vae")).version, "v2");
  } finally {
    await rm(root, { recursive: true });
  }
});

test("resolveActive() explains a missing registry, model, CURRENT or version dir", async () => {
  const root = await tempRegistry();
  try {
    await assert.rejects(resolveActive(join(root, "nope")), code("no-registry"));
    await assert.rejects(resolveActive(root), code("no-model"));
    await addVersion(root, "vae", "v1");
    await assert.rejects(resolveActive(root), code("no-current"));
    await assert.rejects(resolveActive(root, "other"), code("no-model"));
    await writeFile(join(root, "vae", "CURRENT"), "v9");
    await assert.rejects(
      resolveActive(root),
      (e) => code("no-version")(e) && /v9/.test((e as Error).message),
    );
    await writeFile(join(root, "vae", "CURRENT"), "../../etc");
    await assert.rejects(resolveActive(root), code("bad-current"));
    await addVersion(root, "other", "a");
    await assert.rejects(resolveActive(root), code("ambiguous-model"));
  } finally {
    await rm(root, { recursive: true });
  }
});

test("listVersions() lists version dirs sorted and flags the active one", async () => {
  const root = await tempRegistry();
  try {
    await addVersion(root, "vae", "2024-01-02");
    await addVersion(root, "vae", "2024-01-01", false);
    await writeFile(join(root, "vae", "CURRENT"), "2024-01-02");
    const vs = await listVersions(root, "vae");
    assert.deepEqual(vs.map((v) => [v.version, v.active, v.hasManifest]), [
      ["2024-01-01", false, false],
      ["2024-01-02", true, true],
    ]);
    assert.deepEqual(await listModels(root), ["vae"]);
  } finally {
    await rm(root, { recursive: true });
  }
});
