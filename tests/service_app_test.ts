/**
 * The HTTP API through app.request() (no port), on the committed tiny bundle, with every
 * request sent to two apps, one per backend (native onnxruntime-node and wasm onnxruntime-web),
 * which must agree. Reference outputs come from tests/testdata/tiny-bundle-expected.json
 * (computed at export with onnxruntime-node; tolerance stated there, 1e-4).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { encodeBase64 } from "../common/base64.ts";
import { decodeImage, encodeGreyPng, encodeJpeg, readImageHeader } from "../common/image_codec.ts";
import { decodeProbePixels } from "../bundle/mod.ts";
import { createApp, LABELLED_ROUTES } from "../serve/app.ts";
import { defaultConfig } from "../serve/config.ts";
import { ModelSlot } from "../serve/inference/mod.ts";
import { TINY_BUNDLE, TINY_EXPECTED } from "../testkit/fixtures.ts";
import { serveBundle, type Served } from "../testkit/serve_bundle.ts";

interface ExpectedCase {
  pixels: string;
  index: number;
  label: string;
  probabilities: number[];
  mu: number[];
  logvar: number[];
}
const expected = JSON.parse(
  readFileSync(TINY_EXPECTED, "utf8"),
);
const cases: ExpectedCase[] = expected.model.cases;
const TOL: number = expected.tolerance.probabilities;
const pixels = cases.map((c) => decodeProbePixels(c.pixels));
const pngs = pixels.map((p) => encodeGreyPng(p, 28, 28));

// Both backends, loaded once for the module (outside tests, so their worker threads and
// handles are not attributed to any one test by the sanitizers).
const native = await serveBundle("native");
const wasm = await serveBundle("wasm");
const BACKENDS: Served[] = [native, wasm];
const VERSION = native.model.version;

type Body = Uint8Array | string | (() => BodyInit);

function init(method: string, contentType: string | null, body?: Body): RequestInit {
  const headers: Record<string, string> = {};
  if (contentType) headers["Content-Type"] = contentType;
  const b = typeof body === "function" ? body() : body;
  return { method, headers, body: b as BodyInit | undefined };
}

/** Sends the same request to both backends' apps; returns both responses (native, wasm). */
async function both(
  path: string,
  method = "GET",
  contentType: string | null = null,
  body?: Body,
): Promise<Response[]> {
  return await Promise.all(
    BACKENDS.map((s) => s.app.request(path, init(method, contentType, body))),
  );
}

async function json(res: Response, status = 200) {
  const text = await res.text();
  assert.equal(res.status, status, `status ${res.status}: ${text}`);
  return JSON.parse(text);
}

function assertClose(a: number[], b: number[], tol: number, what: string) {
  assert.equal(a.length, b.length, `${what}: length`);
  a.forEach((v, i) =>
    assert.ok(Math.abs(v - b[i]) <= tol, `${what}[${i}]: ${v} vs ${b[i]} (tolerance ${tol})`)
  );
}

interface Prediction {
  label: string;
  index: number;
  confidence: number;
  probabilities: number[];
  latent: { mu: number[]; logvar: number[] };
}
interface ClassifyBody {
  model: { name: string; version: string };
  predictions: Prediction[];
}

/** Checks a classify response against the reference cases `idx` (in order). */
function checkPredictions(body: ClassifyBody, idx: number[]) {
  assert.deepEqual(body.model, { name: "fashion-vae", version: VERSION });
  assert.equal(body.predictions.length, idx.length);
  body.predictions.forEach((p, k) => {
    const c = cases[idx[k]];
    assert.equal(p.index, c.index);
    assert.equal(p.label, c.label);
    assert.equal(p.confidence, Math.max(...p.probabilities));
    assertClose(p.probabilities, c.probabilities, TOL, `case ${idx[k]} probabilities`);
    assertClose(p.latent.mu, c.mu, TOL, `case ${idx[k]} mu`);
    assertClose(p.latent.logvar, c.logvar, TOL, `case ${idx[k]} logvar`);
  });
}

async function classifyBoth(contentType: string | null, body: Body, idx: number[], query = "") {
  for (const res of await both(`/v1/classify${query}`, "POST", contentType, body)) {
    assert.equal(res.headers.get("X-Model-Version"), VERSION);
    checkPredictions(await json(res), idx);
  }
}

Deno.test("POST /v1/classify image/png matches the reference outputs on both backends", async () => {
  for (let i = 0; i < cases.length; i++) await classifyBoth("image/png", pngs[i], [i]);
});

Deno.test("POST /v1/classify image/jpeg of a 28x28 grey image predicts like the PNG (lossless enough)", async () => {
  // JPEG is lossy: compare labels only, at quality 100.
  for (
    const res of await both(
      "/v1/classify",
      "POST",
      "image/jpeg",
      encodeJpeg({ width: 28, height: 28, channels: 1, data: pixels[0] }, 100),
    )
  ) {
    const body = await json(res);
    assert.equal(body.predictions[0].index, cases[0].index);
  }
});

Deno.test("POST /v1/classify application/octet-stream takes N x 784 bytes in order", async () => {
  const all = new Uint8Array(pixels.length * 784);
  pixels.forEach((p, i) => all.set(p, i * 784));
  await classifyBoth("application/octet-stream", all, cases.map((_, i) => i));
});

Deno.test("POST /v1/classify application/json pixels and base64 images (PNG, JPEG, data: URL)", async () => {
  await classifyBoth(
    "application/json",
    JSON.stringify({ pixels: [Array.from(pixels[1]), Array.from(pixels[0])] }),
    [1, 0],
  );
  await classifyBoth(
    "application/json",
    JSON.stringify({
      images: [encodeBase64(pngs[2]), "data:image/png;base64," + encodeBase64(pngs[3])],
    }),
    [2, 3],
  );
});

Deno.test("POST /v1/classify multipart/form-data with several files keeps their order", async () => {
  const form = () => {
    const f = new FormData();
    f.append(
      "first",
      new Blob([pngs[3] as Uint8Array<ArrayBuffer>], { type: "image/png" }),
      "a.png",
    );
    f.append("note", "text fields are ignored");
    f.append(
      "second",
      new Blob([pngs[0] as Uint8Array<ArrayBuffer>], { type: "image/png" }),
      "b.png",
    );
    return f;
  };
  for (const s of BACKENDS) {
    checkPredictions(
      await json(await s.app.request("/v1/classify", { method: "POST", body: form() })),
      [3, 0],
    );
  }
});

Deno.test("native and wasm backends give the same predictions on 64 mixed inputs (within 1e-5)", async () => {
  const rnd = new Uint8Array(64 * 784);
  let x = 12345;
  for (let i = 0; i < rnd.length; i++) rnd[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  pixels.forEach((p, i) => rnd.set(p, i * 784));
  const [a, b]: ClassifyBody[] = await Promise.all(
    (await both("/v1/classify", "POST", "application/octet-stream", rnd)).map((r) => json(r)),
  );
  a.predictions.forEach((p, i) => {
    assert.equal(p.index, b.predictions[i].index, `image ${i}`);
    assertClose(p.probabilities, b.predictions[i].probabilities, 1e-5, `image ${i}`);
  });
});

Deno.test("POST /v1/latent returns mu/logvar, and seeded samples that repeat", async () => {
  for (const res of await both("/v1/latent", "POST", "image/png", pngs[0])) {
    const body = await json(res);
    assert.equal(body.latents.length, 1);
    assertClose(body.latents[0].mu, cases[0].mu, TOL, "mu");
    assertClose(body.latents[0].logvar, cases[0].logvar, TOL, "logvar");
    assert.equal(body.latents[0].samples, undefined);
  }
  const [a, b] = await both(
    "/v1/latent?samples=3&seed=7",
    "POST",
    "application/octet-stream",
    pixels[0],
  );
  const ja = await json(a), jb = await json(b);
  assert.equal(ja.seed, 7);
  assert.equal(ja.latents[0].samples.length, 3);
  assert.equal(ja.latents[0].samples[0].length, 2);
  assertClose(
    ja.latents[0].samples.flat(),
    jb.latents[0].samples.flat(),
    1e-4,
    "same seed on both backends",
  );
  const again = await json(
    await native.app.request(
      "/v1/latent?samples=3&seed=7",
      init("POST", "application/octet-stream", pixels[0]),
    ),
  );
  assert.deepEqual(again.latents[0].samples, ja.latents[0].samples);
  const other = await json(
    await native.app.request(
      "/v1/latent?samples=3&seed=8",
      init("POST", "application/octet-stream", pixels[0]),
    ),
  );
  assert.notDeepEqual(other.latents[0].samples, ja.latents[0].samples);
  for (const q of ["samples=65", "samples=-1", "samples=x", "seed=-3", "seed=99999999999"]) {
    const res = await native.app.request(`/v1/latent?${q}`, init("POST", "image/png", pngs[0]));
    assert.equal((await json(res, 400)).error.code, "bad_parameter", q);
  }
});

Deno.test("POST /v1/reconstruct returns a 28x28 PNG equal to decoding the image's mu", async () => {
  const [a, b] = await both("/v1/reconstruct", "POST", "image/png", pngs[0]);
  for (const r of [a, b]) {
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("Content-Type"), "image/png");
    assert.equal(r.headers.get("X-Model-Version"), VERSION);
  }
  const imgA = decodeImage(new Uint8Array(await a.arrayBuffer())),
    imgB = decodeImage(new Uint8Array(await b.arrayBuffer()));
  assert.deepEqual([imgA.width, imgA.height, imgA.channels], [28, 28, 1]);
  assertClose(
    Array.from(imgA.data),
    Array.from(imgB.data),
    1,
    "native vs wasm reconstruction bytes",
  );
  const dec = await native.app.request(
    "/v1/decode",
    init("POST", "application/json", JSON.stringify({ latent: cases[0].mu })),
  );
  assertClose(
    Array.from(decodeImage(new Uint8Array(await dec.arrayBuffer())).data),
    Array.from(imgA.data),
    1,
    "reconstruct vs decode(mu)",
  );
  // Two images are refused: reconstruct is one in, one out.
  const two = new Uint8Array(2 * 784);
  assert.equal(
    (await json(
      await native.app.request("/v1/reconstruct", init("POST", "application/octet-stream", two)),
      422,
    )).error.code,
    "one_image_only",
  );
});

Deno.test("POST /v1/decode matches the reference decoder outputs within 1 grey level", async () => {
  for (const c of expected.decoder.cases as { z: number[]; pixels: string }[]) {
    for (
      const res of await both(
        "/v1/decode",
        "POST",
        "application/json",
        JSON.stringify({ latent: c.z }),
      )
    ) {
      assert.equal(res.status, 200);
      const img = decodeImage(new Uint8Array(await res.arrayBuffer()));
      assertClose(
        Array.from(img.data),
        Array.from(decodeProbePixels(c.pixels)),
        expected.tolerance.decodedPixelBytes,
        `decode(${c.z})`,
      );
    }
  }
});

Deno.test("POST /v1/decode refuses wrong lengths (422), non-finite values (422), bad JSON (400), other types (415)", async () => {
  const post = (ct: string, body: string) =>
    native.app.request("/v1/decode", init("POST", ct, body));
  assert.equal(
    (await json(await post("application/json", '{"latent":[1,2,3]}'), 422)).error.code,
    "bad_latent_length",
  );
  assert.equal(
    (await json(await post("application/json", '{"latent":[1,"NaN"]}'), 422)).error.code,
    "bad_latent_value",
  );
  assert.equal(
    (await json(await post("application/json", '{"latent":[1e300,0]}'), 422)).error.code,
    "bad_latent_value",
  );
  assert.equal(
    (await json(await post("application/json", '{"latent":[1,null]}'), 422)).error.code,
    "bad_latent_value",
  );
  assert.equal(
    (await json(await post("application/json", "{latent: [1, 2]}"), 400)).error.code,
    "bad_json",
  );
  assert.equal(
    (await json(await post("application/json", '{"z":[1,2]}'), 400)).error.code,
    "bad_json_shape",
  );
  assert.equal(
    (await json(await post("text/plain", "1,2"), 415)).error.code,
    "unsupported_media_type",
  );
});

Deno.test("GET /v1/models summarises the active bundle from its manifest", async () => {
  for (const res of await both("/v1/models")) {
    const body = await json(res);
    const mf = JSON.parse(readFileSync(`${TINY_BUNDLE}/manifest.json`, "utf8"));
    assert.equal(body.active.name, mf.name);
    assert.equal(body.active.version, mf.version);
    assert.equal(body.active.latentSize, mf.latentSize);
    assert.deepEqual(body.active.labels, mf.labels);
    assert.equal(body.active.metrics.testAccuracy, mf.metrics.testAccuracy);
    assert.equal(body.active.decoder, true);
    assert.ok(body.active.probe.cases >= 1);
    assert.equal(body.source, "bundle");
    assert.deepEqual(body.versions, [{ version: mf.version, active: true, hasManifest: true }]);
  }
  assert.equal((await json((await both("/v1/models"))[1])).active.backend, "wasm");
});

Deno.test("GET /healthz, /readyz, /openapi.json and /docs answer; every route is documented", async () => {
  const [h] = await both("/healthz");
  const health = await json(h) as { status: string; pid: number; uptimeSeconds: number };
  assert.equal(health.status, "ok");
  assert.equal(health.pid, Deno.pid);
  assert.ok(health.uptimeSeconds >= 0);
  const r = await json((await both("/readyz"))[0]);
  assert.equal(r.status, "ready");
  assert.equal(r.model.version, VERSION);
  const doc = await json((await both("/openapi.json"))[0]);
  assert.equal(doc.openapi, "3.1.0");
  // The routes /metrics labels by name (app.ts; /v1/admin is off without a token), then the
  // demo's and the ones with path parameters.
  const routes = [
    ...LABELLED_ROUTES.filter((p) => !p.startsWith("/v1/admin")),
    "/demo/*",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{name}",
    "/v2/models/{name}/versions/{version}",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}/ready",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
    "/v1/models/active/samples/{index}",
    "/v1/gallery/items/{id}/image",
  ];
  for (const p of routes) assert.ok(doc.paths[p], `${p} is missing from /openapi.json`);
  // Hono writes a path parameter as :name, OpenAPI as {name}.
  const registered = new Set(
    native.app.routes.filter((x) => x.method !== "ALL").map((x) => x.path.replace(/:(\w+)/g, "{$1}") // Hono's /:name is OpenAPI's /{name}
    ),
  );
  assert.deepEqual([...registered].sort(), [...routes].sort());
  const docs = (await both("/docs"))[0];
  assert.equal(docs.status, 200);
  assert.match(docs.headers.get("Content-Type") ?? "", /text\/html/);
  const html = await docs.text();
  for (const p of routes) assert.ok(html.includes(p), `${p} missing from /docs`);
  assert.ok(
    !/<script|https?:\/\/(?!localhost)[a-z]/i.test(html.replace(/http:\/\/localhost[^\s<]*/g, "")),
    "docs must not load external resources",
  );
});

Deno.test("GET /metrics counts requests by route and status, images, batch sizes and the active model", async () => {
  const s = await serveBundle("native");
  await s.app.request(
    "/v1/classify",
    init("POST", "application/octet-stream", new Uint8Array(3 * 784)),
  );
  await s.app.request("/v1/classify", init("POST", "text/plain", "x"));
  const res = await s.app.request("/metrics");
  assert.equal(res.status, 200);
  assert.match(res.headers.get("Content-Type") ?? "", /^text\/plain/);
  const text = await res.text();
  assert.match(text, /http_requests_total\{method="POST",route="\/v1\/classify",status="200"\} 1/);
  assert.match(text, /http_requests_total\{method="POST",route="\/v1\/classify",status="415"\} 1/);
  assert.match(text, /images_classified_total\{route="\/v1\/classify"\} 3/);
  assert.match(text, /inference_batch_size_bucket\{graph="model",le="4"\} \d+/);
  assert.match(text, /http_request_duration_seconds_count\{route="\/v1\/classify"\} 2/);
  assert.ok(
    text.includes(`model_info{backend="native",name="fashion-vae",version="${VERSION}"} 1`),
  );
  assert.match(text, /model_ready 1/);
  await s.slot.close();
});

Deno.test("error statuses: 400 malformed, 413 too big, 415 unsupported, 422 wrong counts/values, 404 unknown", async () => {
  const small = await serveBundle("native", TINY_BUNDLE, {
    maxBodyBytes: 4096,
    maxBatch: 4,
    maxPixels: 10_000,
  });
  const post = (ct: string | null, body: Body, path = "/v1/classify") =>
    small.app.request(path, init("POST", ct, body));
  const expectError = async (res: Response, status: number, code: string) => {
    const body = await json(res, status);
    assert.equal(body.error.code, code);
    assert.equal(typeof body.error.message, "string");
    assert.ok(body.error.message.length > 10);
  };
  // 400
  await expectError(await post("application/json", "{not json"), 400, "bad_json");
  await expectError(await post("application/json", "[1,2]"), 400, "bad_json_shape");
  await expectError(await post("application/json", '{"pixels": 5}'), 400, "bad_json_shape");
  await expectError(
    await post("application/json", '{"pixels": [], "images": []}'),
    400,
    "bad_json_shape",
  );
  await expectError(await post("application/json", '{"images": ["***"]}'), 400, "bad_base64");
  await expectError(await post("application/json", '{"pixels": []}'), 400, "empty_batch");
  await expectError(await post("image/png", new Uint8Array([1, 2, 3])), 400, "bad_image");
  await expectError(await post("image/png", pngs[0].subarray(0, 40)), 400, "bad_image");
  await expectError(await post("image/png", new Uint8Array()), 400, "empty_batch");
  await expectError(await post("multipart/form-data; boundary=x", "garbage"), 400, "bad_multipart");
  await expectError(
    await post("application/octet-stream", pixels[0], "/v1/classify?preprocess=maybe"),
    400,
    "bad_parameter",
  );
  // 413
  await expectError(
    await post("application/octet-stream", new Uint8Array(5000)),
    413,
    "body_too_large",
  );
  await expectError(
    await post("application/octet-stream", new Uint8Array(5 * 784)),
    413,
    "batch_too_large",
  );
  const bigPng = encodeGreyPng(new Uint8Array(200 * 200), 200, 200); // 40k pixels > 10k, but a small file
  assert.ok(bigPng.length < 4096);
  assert.equal(readImageHeader(bigPng).width, 200);
  await expectError(await post("image/png", bigPng), 413, "image_too_large");
  await expectError(
    await post("application/json", JSON.stringify({ pixels: Array(5).fill([0]) })),
    413,
    "batch_too_large",
  );
  // 415
  await expectError(await post("text/plain", "hello"), 415, "unsupported_media_type");
  await expectError(await post("image/gif", "GIF89a"), 415, "unsupported_media_type");
  await expectError(await post(null, pngs[0]), 415, "unsupported_media_type");
  await expectError(
    await post("image/png", new TextEncoder().encode("GIF89a......")),
    415,
    "unsupported_image",
  );
  // 422
  await expectError(
    await post("application/octet-stream", new Uint8Array(785)),
    422,
    "bad_pixel_count",
  );
  await expectError(
    await post("application/json", JSON.stringify({ pixels: [Array(783).fill(0)] })),
    422,
    "bad_pixel_count",
  );
  await expectError(
    await post("application/json", JSON.stringify({ pixels: [[...Array(783).fill(0), 300]] })),
    422,
    "bad_pixel_value",
  );
  await expectError(
    await post("application/json", JSON.stringify({ pixels: [[...Array(783).fill(0), null]] })),
    422,
    "bad_pixel_value",
  );
  await expectError(
    await post("application/json", JSON.stringify({ pixels: [[...Array(783).fill(0), "NaN"]] })),
    422,
    "bad_pixel_value",
  );
  // 404
  await expectError(await small.app.request("/v3/classify"), 404, "not_found"); // /v2 is V2's
  await small.slot.close();
});

Deno.test("413 for a body above the limit even without Content-Length (streamed)", async () => {
  const small = await serveBundle("native", TINY_BUNDLE, { maxBodyBytes: 2048 });
  const stream = new ReadableStream({
    start(c) {
      for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(784));
      c.close();
    },
  });
  const res = await small.app.request("/v1/classify", {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: stream,
  });
  assert.equal((await json(res, 413)).error.code, "body_too_large");
  await small.slot.close();
});

Deno.test("without a model: /healthz 200, /readyz and model endpoints 503 with the reason", async () => {
  const app = createApp({
    slot: new ModelSlot(null, "registry models/ is empty"),
    config: defaultConfig(),
    log: () => {},
  });
  assert.equal((await app.request("/healthz")).status, 200);
  for (
    const [path, method, ct, body] of [
      ["/readyz", "GET", null, undefined],
      ["/v1/models", "GET", null, undefined],
      ["/v1/classify", "POST", "application/octet-stream", new Uint8Array(784)],
      ["/v1/decode", "POST", "application/json", '{"latent":[0,0]}'],
    ] as const
  ) {
    const res = await app.request(path, init(method, ct, body as Body | undefined));
    const b = await json(res, 503);
    assert.equal(b.error.code, "not_ready");
    assert.match(b.error.message, /registry models\/ is empty/);
  }
  assert.match(await (await app.request("/metrics")).text(), /model_ready 0/);
});
