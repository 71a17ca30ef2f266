/**
 * Publishing a version while another is active adds a measured latent translation to the new
 * bundle (trainer/latent_translation.ts through trainer/publish.ts), on real Fashion-MNIST test
 * images and the committed tiny bundles. Runs under Node (npm run test:trainer) and Deno.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  LATENT_TRANSLATION_FILE,
  readLatentTranslation,
  readManifest,
  verifyBundleFiles,
} from "../bundle/mod.ts";
import { TINY_BUNDLE, TINY_BUNDLE_B, TINY_BUNDLE_C } from "../testkit/fixtures.ts";
import { publishCli } from "../testkit/publish_cli.ts";

test("publishing over an active version stores a translation listed in the manifest", async () => {
  const { reg, lines, run, cleanup } = await publishCli("translation-test-");
  try {
    // --force: b is below the first version on the gate's images (trainer/gate_test.ts).
    const flags = ["--registry", reg, "--translation-images", "2000", "--force"];
    assert.equal(await run([TINY_BUNDLE, ...flags]), 0);
    const a = await readManifest(TINY_BUNDLE);
    const first = await readManifest(join(reg, a.name, a.version));
    assert.equal(
      first.files.some((f) => f.role === "latent-translation"),
      false,
      "nothing to map from",
    );

    assert.equal(await run([TINY_BUNDLE_B, ...flags]), 0);
    const b = await readManifest(TINY_BUNDLE_B);
    const dir = join(reg, b.name, b.version);
    const published = await readManifest(dir);
    await verifyBundleFiles(dir, published); // the added file's sha256 is in the manifest
    const t = (await readLatentTranslation(dir, published))!;
    assert.equal(t.from.version, a.version);
    assert.equal(t.to.version, b.version);
    assert.equal(t.fit.images.count, 2000);
    assert.equal(t.fit.images.split, "test");
    assert.deepEqual(t.fit.tried.map((q) => q.method).sort(), ["affine", "procrustes", "rbf"]);
    assert.ok(t.fit.r2 > 0 && t.fit.r2 <= 1, `R² ${t.fit.r2}`);
    assert.ok(t.fit.neighbours > t.fit.untranslatedNeighbours!, JSON.stringify(t.fit));
    assert.match(lines.join("\n"), /latent translation .* affine R² [0-9.]+, 10-NN kept [0-9.]+%/);

    // The exporter's files are unchanged, so publishing the same bundle again is accepted.
    assert.equal(await run([TINY_BUNDLE_B, ...flags]), 0);
    assert.match(lines[lines.length - 1], /already present/);

    // A malformed map fails the acceptance check with the file named.
    const bad = JSON.parse(await readFile(join(dir, LATENT_TRANSLATION_FILE), "utf8"));
    bad.matrix.pop();
    await writeFile(join(dir, LATENT_TRANSLATION_FILE), JSON.stringify(bad));
    await assert.rejects(
      readLatentTranslation(dir, published),
      /latent-translation\.json: Cannot use latent-translation\.json: "matrix" is not 2 rows/,
    );
  } finally {
    await cleanup();
  }
});

test("publish --no-translation leaves the new bundle as exported", async () => {
  const { reg, run, cleanup } = await publishCli("translation-test-");
  try {
    assert.equal(await run([TINY_BUNDLE, "--registry", reg]), 0);
    assert.equal(await run([TINY_BUNDLE_C, "--registry", reg, "--no-translation", "--force"]), 0);
    const c = await readManifest(TINY_BUNDLE_C);
    const m = await readManifest(join(reg, c.name, c.version));
    // Only the gate's record is added (forced past it: c is below the first version).
    assert.deepEqual(m.files.filter((f) => f.role !== "evaluation"), c.files);
    assert.deepEqual(m.files.filter((f) => f.role === "evaluation").length, 1);
  } finally {
    await cleanup();
  }
});
