/**
 * The demo routes through app.request() (no port, no browser) on the committed tiny bundle,
 * mounted by createApp as in production: the page and its assets, the asset allow-list,
 * POST /v1/preprocess against common/preprocess.ts, the latent-map endpoint, its errors, and
 * the routes' OpenAPI entries. tests/demo_browser_test.ts drives the page itself in Chromium.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeImage, encodeGreyPng, encodePng } from "../../common/image_codec.ts";
import { preprocess, toBytes } from "../../common/preprocess.ts";
import { createApp } from "../app.ts";
import { defaultConfig } from "../config.ts";
import { loadBackend, type LoadedModel, loadModel, ModelSlot } from "../inference/mod.ts";
import { validateLatentMap } from "../../bundle/mod.ts";
import { TINY_BUNDLE } from "../../testkit/fixtures.ts";

const TINY = TINY_BUNDLE;
const config = defaultConfig({ bundle: TINY, threads: 1 });

// Loaded once for the module, outside tests, so session threads are not charged to one test.
const { backend } = await loadBackend("native", { threads: 1 });
const model = await loadModel(TINY, { backend, maxBatch: config.maxBatch });
const app = createApp({ slot: new ModelSlot(model), config, log: () => {} });

async function errorCode(res: Response, status: number): Promise<string> {
  assert.equal(res.status, status, await res.clone().text());
  return (await res.json()).error.code;
}

/** A photo-like RGB image: a dark rectangle on white, off centre. */
function photoPng(): Uint8Array {
  const w = 60, h = 40, data = new Uint8Array(w * h * 3).fill(250);
  for (let y = 5; y < 35; y++) {
    for (let x = 10; x < 30; x++) data.fill(40, (y * w + x) * 3, (y * w + x) * 3 + 3);
  }
  return encodePng({ width: w, height: h, channels: 3, data });
}

Deno.test("GET / serves the demo page, same-origin only, with its script and stylesheet", async () => {
  const res = await app.request("/");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/html/);
  assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'self'/);
  const html = await res.text();
  assert.match(html, /<script type="module" src="\/demo\/app\.js">/);
  assert.ok(!/(src|href)="(https?:)?\/\//.test(html), "the page must not load from other hosts");
  for (const [path, type] of [["/demo/app.js", /javascript/], ["/demo/style.css", /text\/css/]]) {
    const r = await app.request(path as string);
    assert.equal(r.status, 200, path as string);
    assert.match(r.headers.get("content-type") ?? "", type as RegExp);
    assert.ok(!/https?:\/\/(?!www\.w3\.org)/.test(await r.text()), `${path} names another host`);
  }
});

Deno.test("GET /demo/* serves the ten samples and nothing outside its allow-list", async () => {
  const list = await (await app.request("/demo/samples/samples.json")).json();
  assert.equal(list.length, 10);
  assert.deepEqual(list.map((s: { index: number }) => s.index), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(list.map((s: { label: string }) => s.label), model.labels);
  for (const s of list) {
    const r = await app.request(`/demo/samples/${s.file}`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("content-type"), "image/png");
    const img = decodeImage(new Uint8Array(await r.arrayBuffer()));
    assert.deepEqual([img.width, img.height, img.channels], [28, 28, 1]);
  }
  for (
    const bad of [
      "/demo/mod.ts",
      "/demo/index.html",
      "/demo/../app.ts",
      "/demo/%2e%2e/app.ts",
      "/demo/samples/../../app.ts",
      "/demo/nope.js",
      "/demo/.hidden.js",
    ]
  ) {
    assert.equal(await errorCode(await app.request(bad), 404), "not_found", bad);
  }
});

Deno.test("POST /v1/preprocess returns the 28x28 input /v1/classify feeds the model", async () => {
  const png = photoPng();
  const res = await app.request("/v1/preprocess", {
    method: "POST",
    headers: { "Content-Type": "image/png" },
    body: png as Uint8Array<ArrayBuffer>,
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "image/png");
  const got = decodeImage(new Uint8Array(await res.arrayBuffer()));
  assert.deepEqual([got.width, got.height, got.channels], [28, 28, 1]);
  assert.deepEqual(Array.from(got.data), Array.from(toBytes(preprocess(decodeImage(png)))));
  // The photo is a dark object on white: the model sees it light on dark.
  assert.ok(got.data[14 * 28 + 14] > 200 && got.data[0] === 0);

  const two = new FormData();
  two.append("a", new Blob([png as Uint8Array<ArrayBuffer>], { type: "image/png" }), "a.png");
  two.append("b", new Blob([png as Uint8Array<ArrayBuffer>], { type: "image/png" }), "b.png");
  assert.equal(
    await errorCode(await app.request("/v1/preprocess", { method: "POST", body: two }), 422),
    "one_image_only",
  );
  assert.equal(
    await errorCode(
      await app.request("/v1/preprocess", {
        method: "POST",
        headers: { "Content-Type": "text/plain" },
        body: "x",
      }),
      415,
    ),
    "unsupported_media_type",
  );
  const big = encodeGreyPng(new Uint8Array(40 * 40), 40, 40);
  assert.equal(
    await errorCode(
      await app.request("/v1/preprocess?preprocess=none", {
        method: "POST",
        headers: { "Content-Type": "image/png" },
        body: big as Uint8Array<ArrayBuffer>,
      }),
      422,
    ),
    "bad_image",
  );
});

Deno.test("GET /v1/models/active/latent-map serves the active bundle's map, naming the model", async () => {
  const res = await app.request("/v1/models/active/latent-map");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-model-version"), model.version);
  const body = await res.json();
  const file = JSON.parse(await readFile(join(TINY, "latent-map.json"), "utf8"));
  assert.deepEqual(body, { model: { name: model.name, version: model.version }, ...file });
  assert.equal(body.points.length, body.labels.length);
});

Deno.test("GET /v1/models/active/latent-map answers 503 without a model and 404 without a map", async () => {
  const empty = createApp({ slot: new ModelSlot(null, "test"), config, log: () => {} });
  assert.equal(
    await errorCode(await empty.request("/v1/models/active/latent-map"), 503),
    "not_ready",
  );
  // A model whose manifest lists no latent-map file (only what the route reads is stubbed).
  const noMap = {
    name: "m",
    version: "v1",
    dir: TINY,
    latentSize: 2,
    labels: model.labels,
    manifest: {
      ...model.manifest,
      files: model.manifest.files.filter((f) => f.role !== "latent-map"),
    },
    acquire: () => () => {},
  } as unknown as LoadedModel;
  const app2 = createApp({ slot: new ModelSlot(noMap), config, log: () => {} });
  const res = await app2.request("/v1/models/active/latent-map");
  assert.equal(await errorCode(res, 404), "no_latent_map");
});

Deno.test("validateLatentMap() names what is wrong with a malformed map", () => {
  const good = {
    format: "latent-edge/latent-map@1",
    method: "mu",
    mean: [0, 0],
    components: [[1, 0], [0, 1]],
    points: [[0.5, -1]],
    labels: [3],
  };
  assert.deepEqual(validateLatentMap(good, 2, 10), good);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...good, format: "x" }, /format/],
    [{ ...good, mean: [0] }, /"mean" is not 2 numbers/],
    [{ ...good, components: [[1, 0]] }, /"components" is not 2 rows/],
    [{ ...good, points: [[1]] }, /"points"/],
    [{ ...good, labels: [10] }, /"labels"/],
    [{ ...good, labels: [] }, /"labels"/],
  ];
  for (const [m, re] of bad) assert.throws(() => validateLatentMap(m, 2, 10), re);
});

Deno.test("the demo routes are listed in /openapi.json and /docs", async () => {
  const doc = await (await app.request("/openapi.json")).json();
  const html = await (await app.request("/docs")).text();
  for (
    const p of [
      "/",
      "/demo/*",
      "/v1/preprocess",
      "/v1/models/active/latent-map",
      "/v1/models/active/samples",
      "/v1/models/active/samples/{index}",
    ]
  ) {
    assert.ok(doc.paths[p], `${p} is missing from /openapi.json`);
    assert.ok(html.includes(p), `${p} is missing from /docs`);
  }
  // Hono writes a path parameter as :name, OpenAPI as {name}.
  const registered = new Set(
    app.routes.filter((r) => r.method !== "ALL").map((r) => r.path.replace(/:(\w+)/g, "{$1}")),
  );
  for (const p of Object.keys(doc.paths)) {
    if (p.startsWith("/v1/admin/")) continue; // documented always, mounted only with an admin token
    assert.ok(registered.has(p), `${p} is not a route`);
  }
});

Deno.test("GET /v1/models/active/samples answers 404 naming the model when the bundle has none", async () => {
  assert.equal(await errorCode(await app.request("/v1/models/active/samples"), 404), "no_samples");
  assert.equal(
    await errorCode(await app.request("/v1/models/active/samples/0"), 404),
    "no_samples",
  );
});

Deno.test("the default bundle's samples are listed with class names and served as 28x28 PNGs", async () => {
  const dir = new URL("../../models/fashion-vae/", import.meta.url).pathname;
  const version = (await readFile(join(dir, "CURRENT"), "utf8")).trim();
  const m = await loadModel(join(dir, version), { backend, maxBatch: config.maxBatch });
  const a = createApp({ slot: new ModelSlot(m), config, log: () => {} });
  try {
    const body = await (await a.request("/v1/models/active/samples")).json();
    assert.equal(body.model.version, version);
    assert.equal(body.samples.length, 30, "3 per class");
    assert.deepEqual([...new Set(body.samples.map((s: { name: string }) => s.name))], m.labels);
    const png = await a.request(body.samples[4].url);
    assert.equal(png.headers.get("content-type"), "image/png");
    const img = decodeImage(new Uint8Array(await png.arrayBuffer()));
    assert.deepEqual([img.width, img.height, img.channels], [28, 28, 1]);
    assert.equal(
      await errorCode(await a.request("/v1/models/active/samples/30"), 404),
      "not_found",
    );
    assert.equal(
      await errorCode(await a.request("/v1/models/active/samples/x.png"), 404),
      "not_found",
    );
  } finally {
    await m.close();
  }
});
