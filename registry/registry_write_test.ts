import assert from "node:assert/strict";
import { test } from "node:test";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";
import { resolveActive } from "./registry.ts";
import {
  activateVersion,
  activationStack,
  prune,
  publishBundle,
  readHistory,
  rollback,
} from "./registry_write.ts";

const TINY = TINY_BUNDLE;

/** Copies of the tiny bundle under distinct version ids (checksums unchanged: only the id moves). */
async function bundles(root: string, ids: string[]): Promise<string[]> {
  const out = [];
  for (const id of ids) {
    const dir = join(root, "src", id);
    await cp(TINY, dir, { recursive: true });
    await rewriteManifest(dir, id);
    out.push(dir);
  }
  return out;
}

/** Runs `body` on a fresh registry path (`<root>/models`) beside its sources, then removes both. */
async function inTempRegistry(body: (root: string, reg: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "registry-write-"));
  try {
    await body(root, join(root, "models"));
  } finally {
    await rm(root, { recursive: true });
  }
}

/** Rewrites the bundle copy in `dir` to claim `version`, listing its files as `files` does. */
async function rewriteManifest(
  dir: string,
  version: string,
  files: (f: { role: string; path: string }) => boolean = () => true,
): Promise<void> {
  const m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
  m.version = version;
  m.files = m.files.filter(files);
  await writeFile(join(dir, "manifest.json"), JSON.stringify(m));
}

/** v1 is active and the only version the model holds: nothing else was left behind. */
async function assertOnlyV1(reg: string): Promise<void> {
  assert.equal((await resolveActive(reg)).version, "v1");
  assert.deepEqual((await readdir(join(reg, "fashion-vae"))).sort(), ["CURRENT", "HISTORY", "v1"]);
}

test("activationStack() pushes activations and pops on rollback", () => {
  const e = (version: string, action: "publish" | "activate" | "rollback") => ({
    version,
    action,
    time: "",
  });
  assert.deepEqual(activationStack([e("a", "publish"), e("b", "publish"), e("c", "publish")]), [
    "a",
    "b",
    "c",
  ]);
  assert.deepEqual(
    activationStack([e("a", "publish"), e("b", "publish"), e("c", "publish"), e("b", "rollback")]),
    ["a", "b"],
  );
  assert.deepEqual(activationStack([e("a", "publish"), e("a", "activate")]), ["a"]);
});

test("publishBundle() copies in, flips CURRENT, records history; rollback() walks back; prune() spares active and previous", async () => {
  await inTempRegistry(async (root, reg) => {
    const [a, b, c, d] = await bundles(root, ["v1", "v2", "v3", "v4"]);
    const r1 = await publishBundle(a, { registry: reg });
    assert.deepEqual([r1.name, r1.version, r1.previous, r1.copied], [
      "fashion-vae",
      "v1",
      null,
      true,
    ]);
    await publishBundle(b, { registry: reg });
    await publishBundle(c, { registry: reg });
    assert.equal((await resolveActive(reg)).version, "v3");
    // Same version again with identical files: accepted, not copied.
    assert.equal((await publishBundle(c, { registry: reg })).copied, false);
    // No temporary or lock entries are left behind.
    assert.deepEqual((await readdir(join(reg, "fashion-vae"))).sort(), [
      "CURRENT",
      "HISTORY",
      "v1",
      "v2",
      "v3",
    ]);

    assert.deepEqual(await rollback(reg, "fashion-vae"), {
      from: "v3",
      to: "v2",
      cleaned: [],
      repaired: null,
    });
    assert.deepEqual(await rollback(reg, "fashion-vae"), {
      from: "v2",
      to: "v1",
      cleaned: [],
      repaired: null,
    });
    await assert.rejects(rollback(reg, "fashion-vae"), /no earlier version/);
    await activateVersion(reg, "fashion-vae", "v3");
    assert.deepEqual(
      (await readHistory(join(reg, "fashion-vae"))).map((h) => `${h.action}:${h.version}`),
      ["publish:v1", "publish:v2", "publish:v3", "rollback:v2", "rollback:v1", "activate:v3"],
    );
    // keep 1: v3 is active and v1 (the version below it) previous, so only v2 goes.
    assert.deepEqual(await prune(reg, "fashion-vae", 1), ["v2"]);
    const r4 = await publishBundle(d, { registry: reg, keep: 2 });
    assert.deepEqual(r4.pruned, ["v1"]);
    assert.deepEqual(
      (await readdir(join(reg, "fashion-vae"))).filter((n) => n.startsWith("v")).sort(),
      ["v3", "v4"],
    );
    assert.deepEqual(await rollback(reg, "fashion-vae"), {
      from: "v4",
      to: "v3",
      cleaned: [],
      repaired: null,
    });
  });
});

test("publishBundle() refuses a changed bundle under an existing version and a failed verify, leaving CURRENT alone", async () => {
  await inTempRegistry(async (root, reg) => {
    const [a, b] = await bundles(root, ["v1", "v2"]);
    await publishBundle(a, { registry: reg });
    // Same id, different files: versions are immutable.
    const noMap = (f: { role: string }) => f.role !== "latent-map";
    await rewriteManifest(b, "v1", noMap);
    await assert.rejects(
      publishBundle(b, { registry: reg }),
      /already exists with different files/,
    );
    await rewriteManifest(b, "v2", noMap);
    await assert.rejects(
      publishBundle(b, { registry: reg, verify: () => Promise.reject(new Error("probe failed")) }),
      /probe failed/,
    );
    await assertOnlyV1(reg);
  });
});

test("publishBundle(): the same new version published twice at once succeeds twice, one copy", async () => {
  await inTempRegistry(async (root, reg) => {
    const [a] = await bundles(root, ["v1"]);
    const rs = await Promise.all([1, 2, 3, 4].map(() => publishBundle(a, { registry: reg })));
    assert.deepEqual(rs.map((r) => r.copied).sort(), [false, false, false, true]);
    await assertOnlyV1(reg);
  });
});

test("publishBundle(): a concurrent publish of the same version with other files gets a clear error", async () => {
  await inTempRegistry(async (root, reg) => {
    const [a, b] = await bundles(root, ["v1", "v1-other"]);
    // Same version id, different files: b's manifest is rewritten to claim v1 with another file list.
    await rewriteManifest(b, "v1", (f) => f.path !== "latent-map.json");
    const rs = await Promise.allSettled([a, b].map((src) => publishBundle(src, { registry: reg })));
    const failed = rs.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    assert.equal(failed.length, 1, JSON.stringify(rs.map((r) => r.status)));
    assert.match(
      String(failed[0].reason),
      /Cannot publish fashion-vae@v1: .* already exists with different files/,
    );
    assert.equal((await resolveActive(reg)).version, "v1");
    assert.ok(!(await readdir(join(reg, "fashion-vae"))).some((e) => e.endsWith(".tmp")));
  });
});
