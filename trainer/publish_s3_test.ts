/**
 * The publish CLI on an S3 registry, under Node as `deno task publish` runs it: against a real
 * S3-compatible server (s3rver) on a loopback port, publish verifies with onnxruntime-node and
 * uploads, the regression gate keeps a worse bundle inactive until --force, a probe-failing
 * bundle is refused before anything is uploaded, list marks CURRENT, rollback goes back. Credentials and endpoint come from the AWS environment variables.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import S3rver from "s3rver";
import { s3ClientFromEnv, S3Registry } from "../registry/registry_s3.ts";
import { publishMain, reportPublishError } from "./publish.ts";

const fixture = (name: string) =>
  fileURLToPath(new URL(`../tests/testdata/${name}`, import.meta.url));
const versionOf = async (dir: string) =>
  JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")).version as string;

test("publish, list and rollback on an s3:// registry; a bad bundle uploads nothing", async () => {
  const root = await mkdtemp(join(tmpdir(), "publish-s3-"));
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory: join(root, "s3"),
    configureBuckets: [{ name: "models", configs: [] }],
  });
  const { port } = await server.run();
  // The default lease (15 s): the gate scores while the publisher holds the lock.
  const env = {
    AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
  };
  const url = "s3://models/team/registry";
  const reg = new S3Registry(url, s3ClientFromEnv(env));
  const lines: string[] = [];
  const run = (args: string[]) =>
    publishMain([...args, "--registry", url], (s) => lines.push(s), env).catch((e) =>
      reportPublishError(e, (s) => lines.push(s))
    );
  try {
    assert.equal(await run([fixture("tiny-bundle")]), 0);
    const [a, b] = [
      await versionOf(fixture("tiny-bundle")),
      await versionOf(fixture("tiny-bundle-b")),
    ];
    // b scores 2.8 points below a on a's 1000 test images: stored, kept inactive, then forced.
    assert.equal(await run(["publish", fixture("tiny-bundle-b")]), 1);
    assert.match(lines.at(-1)!, new RegExp(`gate refused ${b} against ${a} on 1000 images`));
    assert.equal(await reg.readCurrent("fashion-vae"), a);
    assert.equal(await run(["publish", fixture("tiny-bundle-b"), "--force"]), 0);
    assert.match(
      lines.join("\n"),
      /--force: activated .* despite: overall accuracy 68\.9% -> 66\.1%/,
    );
    assert.equal(await reg.readCurrent("fashion-vae"), b);
    assert.match(
      lines.join("\n"),
      /published fashion-vae@.* to s3:\/\/models\/team\/registry\/fashion-vae\//,
    );

    const bad = join(root, "bad");
    await cp(fixture("tiny-bundle-c"), bad, { recursive: true });
    const m = JSON.parse(await readFile(join(bad, "manifest.json"), "utf8"));
    m.probe.cases[2].probabilities[0] += 0.25;
    await writeFile(join(bad, "manifest.json"), JSON.stringify(m));
    assert.equal(await run([bad]), 1);
    assert.match(lines[lines.length - 1], /probe/);
    assert.equal((await reg.list(`fashion-vae/${m.version}/`)).length, 0, "nothing uploaded");
    assert.equal(await reg.readCurrent("fashion-vae"), b);

    assert.equal(await run(["rollback"]), 0);
    assert.equal(await reg.readCurrent("fashion-vae"), a);
    assert.match(lines[lines.length - 1], new RegExp(`rolled back from ${b} to ${a}`));
    assert.equal(await run(["activate", "no-such-version"]), 1);
    assert.match(lines[lines.length - 1], /not complete .* does not exist/);
  } finally {
    reg.client.destroy();
    await server.close();
    await rm(root, { recursive: true, force: true });
  }
});
