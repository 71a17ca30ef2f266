/**
 * The operator's repair commands work exactly when CURRENT is broken: `publish rollback` and
 * `publish activate <version>` on a CURRENT that is garbage, empty, missing or names a missing
 * version both succeed and leave CURRENT naming a version that is present. Runs under Node
 * (npm run test:trainer) and Deno (node:test).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { publishBundle } from "../registry/registry_write.ts";
import { publishMain, reportPublishError } from "./publish.ts";

const TINY = fileURLToPath(new URL("../tests/testdata/tiny-bundle", import.meta.url));

// With v2 active and v1 before it: an unreadable CURRENT leaves HISTORY's v2 as the active one,
// so rollback goes to v1; a CURRENT naming a vanished version was the active one, so back to v2.
const DAMAGE: Record<string, [(current: string) => Promise<void>, string]> = {
  garbage: [(p) => writeFile(p, "\u0000\u00ff not a version {}\n"), "v1"],
  empty: [(p) => writeFile(p, ""), "v1"],
  missing: [(p) => rm(p), "v1"],
  "names a missing version": [(p) => writeFile(p, "20990101T000000Z-deadbeef\n"), "v2"],
};

/** A registry holding v1 then v2 (published in that order, so v2 is active, v1 previous). */
async function registry(root: string): Promise<string> {
  const reg = join(root, "models");
  for (const id of ["v1", "v2"]) {
    const dir = join(root, "src", id);
    await cp(TINY, dir, { recursive: true });
    const m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
    m.version = id;
    await writeFile(join(dir, "manifest.json"), JSON.stringify(m));
    await publishBundle(dir, { registry: reg });
  }
  return reg;
}

async function run(args: string[], lines: string[]): Promise<number> {
  return await publishMain(args, (s) => lines.push(s)).catch((e) =>
    reportPublishError(e, (s) => lines.push(s))
  );
}

for (const [kind, [damage, back]] of Object.entries(DAMAGE)) {
  test(`publish rollback and activate repair a CURRENT that is ${kind}`, async () => {
    const root = await mkdtemp(join(tmpdir(), "publish-repair-"));
    try {
      const reg = await registry(root);
      const current = join(reg, "fashion-vae", "CURRENT");
      const lines: string[] = [];

      await damage(current);
      assert.equal(await run(["rollback", "--registry", reg], lines), 0, lines.join("\n"));
      assert.equal((await readFile(current, "utf8")).trim(), back);
      assert.match(
        lines.join("\n"),
        new RegExp(`CURRENT was damaged \\(.*CURRENT .*\\); HISTORY chose ${back}`),
      );

      await damage(current);
      assert.equal(await run(["activate", "v2", "--registry", reg], lines), 0, lines.join("\n"));
      assert.equal((await readFile(current, "utf8")).trim(), "v2");
      assert.match(lines[lines.length - 1], /active version v2/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
}

test("publish rollback with a damaged CURRENT and one version in HISTORY restores that version", async () => {
  const root = await mkdtemp(join(tmpdir(), "publish-repair-"));
  try {
    const reg = await registry(root);
    const model = join(reg, "fashion-vae");
    await rm(join(model, "v1"), { recursive: true });
    await writeFile(join(model, "CURRENT"), "garbage!\n");
    const lines: string[] = [];
    assert.equal(await run(["rollback", "--registry", reg], lines), 0, lines.join("\n"));
    assert.equal((await readFile(join(model, "CURRENT"), "utf8")).trim(), "v2");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("publish activate of an unknown version names the versions present", async () => {
  const root = await mkdtemp(join(tmpdir(), "publish-repair-"));
  try {
    const reg = await registry(root);
    await writeFile(join(reg, "fashion-vae", "CURRENT"), "");
    const lines: string[] = [];
    assert.equal(await run(["activate", "v9", "--registry", reg], lines), 1);
    assert.match(lines[lines.length - 1], /v9 does not exist \(versions: v1, v2\)/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
