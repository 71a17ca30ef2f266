/**
 * The publish CLI against the committed fixtures: publish verifies with onnxruntime-node and
 * flips CURRENT; a bundle whose probe set does not reproduce is refused (exit 1, CURRENT
 * unchanged); rollback returns to the previous version. Runs under Node (npm run test:trainer)
 * and Deno (node:test).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveActive } from "../registry/registry.ts";
import { publishMain, reportPublishError } from "./publish.ts";

const fixture = (name: string) =>
  fileURLToPath(new URL(`../tests/testdata/${name}`, import.meta.url));

test("publish verifies and activates, refuses a probe-failing bundle, and rollback goes back", async () => {
  const root = await mkdtemp(join(tmpdir(), "publish-test-"));
  const reg = join(root, "models");
  const lines: string[] = [];
  const run = (args: string[]) =>
    publishMain(args, (s) => lines.push(s)).catch((e) =>
      reportPublishError(e, (s) => lines.push(s))
    );
  try {
    assert.equal(await run([fixture("tiny-bundle"), "--registry", reg]), 0);
    // b scores 2.8 points below the first on its test images: past the gate only with --force.
    const forced = ["--registry", reg, "--force"];
    assert.equal(await run(["publish", fixture("tiny-bundle-b"), ...forced]), 0);
    const b = JSON.parse(await readFile(join(fixture("tiny-bundle-b"), "manifest.json"), "utf8"));
    assert.equal((await resolveActive(reg)).version, b.version);
    assert.match(lines.join("\n"), /verified with onnxruntime-node/);

    const bad = join(root, "bad");
    await cp(fixture("tiny-bundle-c"), bad, { recursive: true });
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
    await rm(root, { recursive: true });
  }
});
