/**
 * End to end: the real binary (serve/main.ts) in a child process on a free port (--port 0,
 * port read from its log), exercised with fetch, then stopped with SIGTERM. Also checks the
 * no-model start (healthz 200, readyz 503, a message on how to get a model), the registry
 * path (CURRENT -> version dir) and that an unknown flag exits with status 2.
 */
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeGreyPng } from "../common/image_codec.ts";
import { decodeProbePixels } from "../bundle/mod.ts";
import { TINY_BUNDLE, TINY_EXPECTED } from "../testkit/fixtures.ts";
import { startServer } from "../testkit/server_process.ts";

const MAIN = new URL("../serve/main.ts", import.meta.url).pathname;
const DENO = Deno.execPath();

Deno.test("the real server classifies a PNG over HTTP and stops cleanly on SIGTERM", async () => {
  const server = await startServer(["--bundle", TINY_BUNDLE, "--backend", "native"]);
  try {
    assert.ok(server.log.some((l) => /Backend: native/.test(l)), server.log.join("\n"));
    assert.ok(
      server.log.some((l) => /Model fashion-vae version \S+ loaded/.test(l)),
      server.log.join("\n"),
    );
    const ready = await fetch(`${server.url}/readyz`);
    assert.equal(ready.status, 200);
    await ready.body?.cancel();
    const expected = JSON.parse(
      await Deno.readTextFile(TINY_EXPECTED),
    );
    const c = expected.model.cases[0];
    const res = await fetch(`${server.url}/v1/classify`, {
      method: "POST",
      headers: { "Content-Type": "image/png" },
      body: encodeGreyPng(decodeProbePixels(c.pixels), 28, 28) as Uint8Array<ArrayBuffer>,
    });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.predictions[0].index, c.index);
    assert.equal(res.headers.get("x-model-version"), body.model.version);
    // Concurrent requests over real sockets are batched and all answered.
    const many = await Promise.all(
      Array.from({ length: 32 }, () =>
        fetch(`${server.url}/v1/classify`, {
          method: "POST",
          headers: { "Content-Type": "application/octet-stream" },
          body: decodeProbePixels(c.pixels) as Uint8Array<ArrayBuffer>,
        })
          .then((r) => r.json())),
    );
    assert.ok(many.every((b) => b.predictions[0].index === c.index));
  } finally {
    assert.equal(await server.stop(), 0);
  }
});

Deno.test("the real server serves the registry's CURRENT version, and runs unready without a model", async () => {
  const root = await mkdtemp(join(tmpdir(), "serve-e2e-"));
  try {
    // Empty registry: live (healthz) but not ready, with a message saying how to get a model.
    await mkdir(join(root, "models"));
    const empty = await startServer(["--registry", join(root, "models"), "--backend", "wasm"]);
    try {
      assert.equal(
        await fetch(`${empty.url}/healthz`).then(async (r) => (await r.body?.cancel(), r.status)),
        200,
      );
      const r = await fetch(`${empty.url}/readyz`);
      assert.equal(r.status, 503);
      assert.match((await r.json()).error.message, /holds no models/);
      assert.ok(empty.log.some((l) => /To get a model/.test(l)), empty.log.join("\n"));
    } finally {
      assert.equal(await empty.stop(), 0);
    }
    // A registry with one model: models/fashion-vae/<version>/ + CURRENT.
    const manifest = JSON.parse(await Deno.readTextFile(join(TINY_BUNDLE, "manifest.json")));
    await cp(TINY_BUNDLE, join(root, "models", "fashion-vae", manifest.version), {
      recursive: true,
    });
    await writeFile(join(root, "models", "fashion-vae", "CURRENT"), manifest.version + "\n");
    const server = await startServer(["--registry", join(root, "models"), "--backend", "wasm"]);
    try {
      assert.ok(server.log.some((l) => /Backend: wasm/.test(l)));
      const models = await (await fetch(`${server.url}/v1/models`)).json();
      assert.equal(models.active.version, manifest.version);
      assert.equal(models.source, "registry");
      assert.deepEqual(models.versions, [{
        version: manifest.version,
        active: true,
        hasManifest: true,
      }]);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  } finally {
    await rm(root, { recursive: true });
  }
});

Deno.test("serve/main.ts exits with status 2 and the help text on an unknown flag", async () => {
  const out = await new Deno.Command(DENO, {
    args: ["run", "--allow-all", MAIN, "--prot", "80"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  const err = new TextDecoder().decode(out.stderr);
  assert.match(err, /Unknown flag --prot/);
  assert.match(err, /--max-body-bytes/);
});
