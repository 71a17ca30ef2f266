/**
 * Novelty through the HTTP API (app.request, no port) on both backends: the `novelty` field on
 * every content type of /v1/classify and /v1/latent, ?abstain=true, the threshold override,
 * the /metrics series, an uncalibrated bundle (served, novelty unavailable) and a bundle with
 * a broken calibration (refused). The calibrated bundle is the tiny bundle calibrated on real
 * training images (testkit/novelty_helpers.ts); the out-of-distribution input is uniform noise.
 */
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encodeGreyPng, encodeJpeg } from "../common/image_codec.ts";
import { mulberry32 } from "../common/random.ts";
import { loadBackend, loadModel } from "../serve/inference/mod.ts";
import { encodeBase64 } from "../common/base64.ts";
import { calibratedTinyBundle, copyBundle } from "../testkit/novelty_helpers.ts";
import { serveBundle, type Served } from "../testkit/serve_bundle.ts";
import { imageAt, readTestImages } from "../testkit/test_images.ts";

const dir = await calibratedTinyBundle();
const native = await serveBundle("native", dir);
const wasm = await serveBundle("wasm", dir);
const BACKENDS: Served[] = [native, wasm];
const test = readTestImages(4)!;
const garment = imageAt(test, 0).slice() as Uint8Array<ArrayBuffer>;
const rand = mulberry32(9);
const noise = Uint8Array.from({ length: 784 }, () => Math.floor(rand() * 256));
const png = (px: Uint8Array) => encodeGreyPng(px, 28, 28) as Uint8Array<ArrayBuffer>;

/** The same two images (garment, noise) in every content type the API takes. */
const BODIES: [string, () => { body: BodyInit; type?: string }][] = [
  ["octet-stream", () => ({
    body: new Uint8Array([...garment, ...noise]),
    type: "application/octet-stream",
  })],
  ["json pixels", () => ({
    body: JSON.stringify({ pixels: [Array.from(garment), Array.from(noise)] }),
    type: "application/json",
  })],
  ["json images", () => ({
    body: JSON.stringify({ images: [encodeBase64(png(garment)), encodeBase64(png(noise))] }),
    type: "application/json",
  })],
  ["multipart", () => {
    const f = new FormData();
    f.append("a", new Blob([png(garment)], { type: "image/png" }), "a.png");
    f.append("b", new Blob([png(noise)], { type: "image/png" }), "b.png");
    return { body: f };
  }],
];

async function post(s: Served, path: string, b: { body: BodyInit; type?: string }) {
  const res = await s.app.request(path, {
    method: "POST",
    body: b.body,
    headers: b.type ? { "Content-Type": b.type } : {},
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

type Novelty = {
  available: boolean;
  score: number;
  percentile: number;
  outOfDistribution: boolean;
};

// deno-lint-ignore no-explicit-any
const noveltiesOf = (path: string, body: any): Novelty[] =>
  (path === "/v1/classify" ? body.predictions : body.latents).map((p: { novelty: Novelty }) =>
    p.novelty
  );

Deno.test("novelty is on every content type of /v1/classify and /v1/latent, both backends alike", async () => {
  const ref = (await post(native, "/v1/classify", BODIES[0][1]())).predictions[0].novelty;
  assert.equal(ref.available, true);
  for (const s of BACKENDS) {
    for (const path of ["/v1/classify", "/v1/latent"]) {
      for (const [name, make] of BODIES) {
        const [g, n] = noveltiesOf(path, await post(s, path, make()));
        const where = `${s.backend} ${path} ${name}`;
        assert.ok(Math.abs(g.score - ref.score) < 1e-3, `${where}: ${g.score} vs ${ref.score}`);
        assert.ok(g.percentile >= 0 && g.percentile <= 100, where);
        assert.equal(n.outOfDistribution, true, `${where}: noise must be out of distribution`);
        assert.equal(n.percentile, 100, where);
        assert.ok(n.score > g.score, where);
      }
    }
  }
});

Deno.test("PNG and JPEG bodies carry novelty too", async () => {
  const jpeg = encodeJpeg({ width: 28, height: 28, channels: 1, data: noise }, 95);
  for (const s of BACKENDS) {
    for (const [type, body] of [["image/png", png(noise)], ["image/jpeg", jpeg]] as const) {
      const r = await post(s, "/v1/classify", { body: body as Uint8Array<ArrayBuffer>, type });
      assert.equal(r.predictions[0].novelty.outOfDistribution, true, `${s.backend} ${type}`);
    }
  }
});

Deno.test("?abstain=true gives label null and a reason for novel inputs only", async () => {
  for (const s of BACKENDS) {
    const body = await post(s, "/v1/classify?abstain=true", BODIES[0][1]());
    const [g, n] = body.predictions;
    assert.equal(g.novelty.outOfDistribution, false);
    assert.equal(typeof g.label, "string");
    assert.equal(g.reason, undefined);
    assert.equal(n.label, null);
    assert.equal(n.reason, "out_of_distribution");
    assert.equal(n.probabilities.length, 10); // the probabilities stay for the caller to see
    const plain = await post(s, "/v1/classify", BODIES[0][1]());
    assert.equal(typeof plain.predictions[1].label, "string"); // no abstain without asking
  }
  const bad = await native.app.request("/v1/classify?abstain=maybe", {
    method: "POST",
    body: garment,
    headers: { "Content-Type": "application/octet-stream" },
  });
  assert.equal(bad.status, 400);
  assert.match((await bad.json()).error.message, /abstain must be true or false/);
});

Deno.test("--novelty-percentile moves the threshold: 0 flags everything, 100 nothing", async () => {
  const all = await serveBundle("native", dir, { noveltyPercentile: 0 });
  const none = await serveBundle("native", dir, { noveltyPercentile: 100 });
  try {
    const a = await post(all, "/v1/classify?abstain=true", BODIES[0][1]());
    assert.deepEqual(a.predictions.map((p: { label: null }) => p.label), [null, null]);
    const models = await (await all.app.request("/v1/models")).json();
    assert.equal(models.active.novelty.threshold.percentile, 0);
    const n = await post(none, "/v1/latent", { body: garment, type: "application/octet-stream" });
    assert.equal(n.latents[0].novelty.outOfDistribution, false);
  } finally {
    await all.model.close();
    await none.model.close();
  }
});

Deno.test("/metrics counts novelty percentiles and out-of-distribution images per version", async () => {
  const s = await serveBundle("native", dir);
  try {
    await post(s, "/v1/classify", BODIES[0][1]());
    await post(s, "/v1/latent", BODIES[0][1]());
    const text = await (await s.app.request("/metrics")).text();
    const lbl = `name="${s.model.name}",version="${s.model.version}"`;
    assert.match(text, new RegExp(`novelty_percentile_count\\{${lbl}\\} 4\\n`));
    assert.match(text, new RegExp(`novelty_percentile_bucket\\{le="\\+Inf",${lbl}\\} 4\\n`));
    assert.match(text, new RegExp(`novelty_out_of_distribution_total\\{${lbl}\\} 2\\n`));
  } finally {
    await s.model.close();
  }
});

Deno.test("an uncalibrated bundle is served with novelty unavailable and never abstains", async () => {
  const s = await serveBundle("native"); // the committed tiny bundle has no calibration
  try {
    const body = await post(s, "/v1/classify?abstain=true", BODIES[0][1]());
    for (const p of body.predictions) {
      assert.equal(typeof p.label, "string");
      assert.deepEqual(p.novelty, {
        available: false,
        score: null,
        percentile: null,
        outOfDistribution: null,
      });
    }
    const lat = await post(s, "/v1/latent", BODIES[0][1]());
    assert.equal(lat.latents[0].novelty.available, false);
    assert.deepEqual((await (await s.app.request("/v1/models")).json()).active.novelty, {
      available: false,
    });
    assert.doesNotMatch(await (await s.app.request("/metrics")).text(), /novelty_percentile_count/);
  } finally {
    await s.model.close();
  }
});

Deno.test("a bundle whose calibration does not fit its latent is refused, naming the field", async () => {
  const bad = await copyBundle(dir);
  const m = JSON.parse(await readFile(join(bad, "manifest.json"), "utf8"));
  m.novelty.means[3] = m.novelty.means[3].slice(1);
  await writeFile(join(bad, "manifest.json"), JSON.stringify(m));
  const { backend } = await loadBackend("native", { threads: 1 });
  try {
    await assert.rejects(
      loadModel(bad, { backend, maxBatch: 8 }),
      /manifest\.json field "novelty\.means\[3\]".*must have \d+ entries/,
    );
  } finally {
    await rm(bad, { recursive: true });
  }
});
