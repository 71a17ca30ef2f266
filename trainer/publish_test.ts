/**
 * The publish CLI against the committed fixtures: publish verifies with onnxruntime-node and
 * flips CURRENT; a bundle whose probe set does not reproduce is refused (exit 1, CURRENT
 * unchanged); rollback returns to the previous version. Runs under Node (npm run test:trainer)
 * and Deno (node:test).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { cp, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { resolveActive } from "../registry/registry.ts";
import { TINY_BUNDLE, TINY_BUNDLE_B, TINY_BUNDLE_C } from "../testkit/fixtures.ts";
import { publishCli } from "../testkit/publish_cli.ts";

test("publish verifies and activates, refuses a probe-failing bundle, and rollback goes back", async () => {
  const { root, reg, lines, run, cleanup } = await publishCli("publish-test-");
  try {
    assert.equal(await run([TINY_BUNDLE, "--registry", reg]), 0);
    // b scores 2.8 points below the first on its test images: past the gate only with --force.
    const forced = ["--registry", reg, "--force"];
    assert.equal(await run(["publish", TINY_BUNDLE_B, ...forced]), 0);
    const b = JSON.parse(await readFile(join(TINY_BUNDLE_B, "manifest.json"), "utf8"));
    assert.equal((await resolveActive(reg)).version, b.version);
    assert.match(lines.join("\n"), /verified with onnxruntime-node/);

    const bad = join(root, "bad");
    await cp(TINY_BUNDLE_C, bad, { recursive: true });
    const m = JSON.parse(await readFile(join(bad, "manifest.json"), "utf8"));
    m.probe.cases[2].probabilities[0] += 0.25;
    await writeFile(join(bad, "manifest.json"), JSON.stringify(m));
    assert.equal(await run([bad, "--registry", reg]), 1);
    assert.match(
      lines[lines.length - 1],
      /probe case 2: probabilities\[0\] is .* exceeds tolerance/,
    );
    assert.equal((await resolveActive(reg)).version, b.version);

    assert.equal(await run(["rollback", "--registry", reg]), 0);
    assert.notEqual((await resolveActive(reg)).version, b.version);
    assert.equal(await run(["frobnicate", "x", "--registry", reg]), 2);
  } finally {
    await cleanup();
  }
});
