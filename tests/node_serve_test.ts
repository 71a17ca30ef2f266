/**
 * The service on Node.js: `node --import tsx serve/node.ts` (@hono/node-server, onnxruntime-node)
 * on the tiny bundle answers one /v1 classify and one /v2 infer with the bundle's reference
 * outputs (tests/testdata/tiny-bundle-expected.json, tolerance 1e-4); on a registry it routes a
 * 100% canary and runs a shadow as serve/main.ts does (both entries wire serve/service.ts).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decodeProbePixels } from "../bundle/mod.ts";
import { readLines } from "../common/lines.ts";
import { setShadow, startCanary } from "../registry/traffic.ts";
import { REQUEST_KEY_HEADER } from "../serve/traffic/route.ts";
import { makeRegistry, MODEL, VERSIONS } from "../testkit/fixtures.ts";
import { waitFor } from "../testkit/wait.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const expected = JSON.parse(
  readFileSync(new URL("./testdata/tiny-bundle-expected.json", import.meta.url), "utf8"),
);
const c0 = expected.model.cases[0];

/** serve/node.ts on a free loopback port with `args`, once it prints its "Listening on" line. */
async function startNode(args: string[]): Promise<{ url: string; stop(): Promise<number> }> {
  const child = new Deno.Command("node", {
    args: ["--import", "tsx", "serve/node.ts", ...args, "--port", "0", "--host", "127.0.0.1"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let url = "";
  const reading = readLines(child.stdout, (line) => {
    url ||= /Listening on (http:\/\/[^/]+)\//.exec(line)?.[1] ?? "";
  });
  const stop = async () => {
    child.kill("SIGTERM");
    const { code } = await child.status;
    await reading;
    return code;
  };
  try {
    await waitFor(() => url !== "", "serve/node.ts to listen", 30_000, 20);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, stop };
}

Deno.test("node serve/node.ts (@hono/node-server, onnxruntime-node) answers /v1/classify and /v2 infer", async () => {
  const { url, stop } = await startNode(["--bundle", "tests/testdata/tiny-bundle"]);
  try {
    const px = decodeProbePixels(c0.pixels);
    const v1 = await (await fetch(`${url}/v1/classify`, {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: px.slice(),
    })).json();
    assert.equal(v1.predictions[0].index, c0.index);
    v1.predictions[0].probabilities.forEach((p: number, k: number) =>
      assert.ok(Math.abs(p - c0.probabilities[k]) <= 1e-4)
    );
    const res = await fetch(`${url}/v2/models/fashion-vae/infer`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        id: "n1",
        inputs: [{ name: "image", datatype: "UINT8", shape: [1, 784], data: Array.from(px) }],
      }),
    });
    assert.equal(res.status, 200);
    const v2 = await res.json();
    assert.equal(v2.id, "n1");
    assert.deepEqual(v2.outputs[0].data, v1.predictions[0].probabilities);
    assert.deepEqual(v2.outputs[1].data, v1.predictions[0].latent.mu);
  } finally {
    assert.equal(await stop(), 0, "SIGTERM drains and exits 0");
  }
});

Deno.test("node serve/node.ts routes a canary's share and runs a shadow, as serve/main.ts does", async () => {
  const reg = await makeRegistry();
  await startCanary(reg.root, MODEL, VERSIONS[1], 50);
  await setShadow(reg.root, MODEL, VERSIONS[2]);
  const { url, stop } = await startNode(["--registry", reg.root, "--model", MODEL]);
  try {
    const px = decodeProbePixels(c0.pixels);
    const versions: string[] = [];
    for (let k = 0; k < 12; k++) {
      const res = await fetch(`${url}/v1/classify`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream", [REQUEST_KEY_HEADER]: `k${k}` },
        body: px.slice(),
      });
      assert.equal(res.status, 200);
      versions.push(res.headers.get("X-Model-Version") ?? "");
      await res.body?.cancel();
    }
    // Keys hash to a fixed side: these 12 land on both, and the primary's answers are shadowed.
    const primary = versions.filter((v) => v === VERSIONS[0]).length;
    assert.ok(primary > 0 && primary < 12, versions.join(" "));
    assert.equal(versions.filter((v) => v === VERSIONS[1]).length, 12 - primary);
    const status = async () => (await (await fetch(`${url}/v1/models`)).json()).traffic;
    await waitFor(async () => (await status()).shadow.compared === primary, "the shadow runs");
    const t = await status();
    assert.deepEqual([t.canary.version, t.canary.percent, t.canary.routing], [
      VERSIONS[1],
      50,
      true,
    ]);
    assert.deepEqual([t.shadow.version, t.shadow.loaded, t.shadow.failures], [
      VERSIONS[2],
      true,
      0,
    ]);
  } finally {
    assert.equal(await stop(), 0);
    await reg.cleanup();
  }
});
