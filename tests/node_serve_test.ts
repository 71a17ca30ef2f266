/**
 * The service on Node.js: `node --import tsx serve/node.ts` (@hono/node-server, onnxruntime-node)
 * on the tiny bundle answers one /v1 classify and one /v2 infer with the bundle's reference
 * outputs (tests/testdata/tiny-bundle-expected.json, tolerance 1e-4).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { decodeProbePixels } from "../bundle/mod.ts";
import { readLines } from "../common/lines.ts";
import { waitFor } from "../testkit/wait.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const expected = JSON.parse(
  readFileSync(new URL("./testdata/tiny-bundle-expected.json", import.meta.url), "utf8"),
);
const c0 = expected.model.cases[0];

Deno.test("node serve/node.ts (@hono/node-server, onnxruntime-node) answers /v1/classify and /v2 infer", async () => {
  const child = new Deno.Command("node", {
    args: [
      "--import",
      "tsx",
      "serve/node.ts",
      "--bundle",
      "tests/testdata/tiny-bundle",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let url = "";
  const reading = readLines(child.stdout, (line) => {
    url ||= /Listening on (http:\/\/[^/]+)\//.exec(line)?.[1] ?? "";
  });
  try {
    await waitFor(() => url !== "", "serve/node.ts to listen", 30_000, 20);
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
    child.kill("SIGTERM");
    await child.status;
    await reading;
  }
});
