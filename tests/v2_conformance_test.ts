/**
 * Open Inference Protocol V2 conformance, through app.request() on the committed tiny bundle
 * (native onnxruntime): every /v2 route, content type and error, each response checked against
 * the spec's schemas (serve/v2/schemas.ts, with ajv), the spec's worked examples, and every
 * input datatype giving exactly the /v1 prediction for the same image.
 */
import assert from "node:assert/strict";
import AjvModule from "ajv";
import { readFileSync } from "node:fs";
import { encodeGreyPng } from "../common/image_codec.ts";
import { decodeProbePixels } from "../bundle/mod.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { createApp } from "../serve/app.ts";
import { defaultConfig } from "../serve/config.ts";
import { ModelSlot } from "../serve/inference/mod.ts";
import {
  float32Bytes,
  joinBody,
  readBytesElements,
  writeBytesElements,
} from "../serve/v2/binary.ts";
import {
  CLASSIFICATION_ELEMENT,
  errorSchema,
  inferenceRequestSchema,
  inferenceResponseSchema,
  modelMetadataSchema,
  modelReadySchema,
  serverLiveSchema,
  serverMetadataSchema,
  serverReadySchema,
} from "../serve/v2/schemas.ts";
import { encodeBase64 } from "../common/base64.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";

// ajv is CommonJS: its class is the module itself at run time, `.default` for the types.
const Ajv = AjvModule as unknown as typeof AjvModule.default;
const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map<object, ReturnType<typeof ajv.compile>>();
function conforms(schema: object, body: unknown): void {
  let v = validators.get(schema);
  if (!v) validators.set(schema, v = ajv.compile(schema));
  assert.ok(
    v(body),
    `${(schema as { $id: string }).$id}: ${ajv.errorsText(v.errors)} in ${
      JSON.stringify(body).slice(0, 300)
    }`,
  );
}

const expected = JSON.parse(
  readFileSync(new URL("./testdata/tiny-bundle-expected.json", import.meta.url), "utf8"),
);
const pixels: Uint8Array[] = expected.model.cases.map((c: { pixels: string }) =>
  decodeProbePixels(c.pixels)
);
const N = pixels.length;
const flatPixels = new Uint8Array(N * 784);
pixels.forEach((p, i) => flatPixels.set(p, i * 784));
const floats = normalizePixels(flatPixels);

const served = await serveBundle("native");
const { app } = served;
const NAME = served.model.name, VERSION = served.model.version;
const INFER = `/v2/models/${NAME}/infer`;
const emptyApp = createApp({
  slot: new ModelSlot(null, "still loading"),
  config: defaultConfig(),
  log: () => {},
});

async function jsonOf(res: Response, status: number, schema: object) {
  assert.equal(res.status, status, `status ${res.status}: ${await res.clone().text()}`);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  const body = await res.json();
  conforms(schema, body);
  return body;
}

function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return app.request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: typeof body === "string" || body instanceof Uint8Array
      ? body as BodyInit
      : JSON.stringify(body),
  });
}

const input = (datatype: string, shape: number[], data: unknown, parameters?: object) => ({
  name: "image",
  datatype,
  shape,
  data,
  ...(parameters ? { parameters } : {}),
});

/** /v1's answer for the same pixels (raw bytes), the reference every V2 datatype must equal. */
const v1 = await (await app.request("/v1/classify", {
  method: "POST",
  headers: { "Content-Type": "application/octet-stream" },
  body: flatPixels,
})).json();
const v1Probs = v1.predictions.flatMap((p: { probabilities: number[] }) => p.probabilities);
const v1Mu = v1.predictions.flatMap((p: { latent: { mu: number[] } }) => p.latent.mu);
const v1Logvar = v1.predictions.flatMap((p: { latent: { logvar: number[] } }) => p.latent.logvar);

function assertSameAsV1(body: { outputs: { name: string; data: number[]; shape: number[] }[] }) {
  const by = Object.fromEntries(body.outputs.map((o) => [o.name, o]));
  assert.deepEqual(by.probabilities.shape, [N, 10]);
  assert.deepEqual(by.probabilities.data, v1Probs);
  assert.deepEqual(by.mu.data, v1Mu);
  assert.deepEqual(by.logvar.data, v1Logvar);
}

Deno.test("GET /v2 is the server metadata with both extensions", async () => {
  const body = await jsonOf(await app.request("/v2"), 200, serverMetadataSchema);
  assert.equal(body.name, "latent-edge");
  assert.deepEqual(body.extensions, ["binary_tensor_data", "classification"]);
});

Deno.test("health: live always, ready 200 with a model and 503 without", async () => {
  assert.deepEqual(await jsonOf(await app.request("/v2/health/live"), 200, serverLiveSchema), {
    live: true,
  });
  assert.deepEqual(await jsonOf(await app.request("/v2/health/ready"), 200, serverReadySchema), {
    ready: true,
  });
  assert.deepEqual(await jsonOf(await emptyApp.request("/v2/health/live"), 200, serverLiveSchema), {
    live: true,
  });
  assert.deepEqual(
    await jsonOf(await emptyApp.request("/v2/health/ready"), 503, serverReadySchema),
    { ready: false },
  );
});

Deno.test("model ready: with and without version; unknown model or version 404; no model 503", async () => {
  for (const path of [`/v2/models/${NAME}/ready`, `/v2/models/${NAME}/versions/${VERSION}/ready`]) {
    assert.deepEqual(await jsonOf(await app.request(path), 200, modelReadySchema), {
      name: NAME,
      ready: true,
    });
  }
  for (const path of ["/v2/models/nope/ready", `/v2/models/${NAME}/versions/nope/ready`]) {
    const body = await jsonOf(await app.request(path), 404, errorSchema);
    assert.match(body.error, /nope/);
  }
  assert.deepEqual(
    await jsonOf(await emptyApp.request(`/v2/models/${NAME}/ready`), 503, modelReadySchema),
    { name: NAME, ready: false },
  );
});

Deno.test("model metadata: platform onnx_onnxv1, -1 for the batch, FP32 tensors from the manifest", async () => {
  for (const path of [`/v2/models/${NAME}`, `/v2/models/${NAME}/versions/${VERSION}`]) {
    const body = await jsonOf(await app.request(path), 200, modelMetadataSchema);
    assert.deepEqual(body, {
      name: NAME,
      versions: [VERSION],
      platform: "onnx_onnxv1",
      inputs: [{ name: "image", datatype: "FP32", shape: [-1, 1, 28, 28] }],
      outputs: [
        { name: "probabilities", datatype: "FP32", shape: [-1, 10] },
        { name: "mu", datatype: "FP32", shape: [-1, 2] },
        { name: "logvar", datatype: "FP32", shape: [-1, 2] },
      ],
    });
  }
  await jsonOf(await app.request("/v2/models/other"), 404, errorSchema);
  await jsonOf(await app.request(`/v2/models/${NAME}/versions/0`), 404, errorSchema);
  await jsonOf(await emptyApp.request(`/v2/models/${NAME}`), 503, errorSchema);
});

Deno.test("infer: FP32 [N,784] flat, FP32 [N,1,28,28] nested, UINT8 and BYTES (base64 PNG) all equal /v1", async () => {
  const nested = pixels.map((
    _,
    i,
  ) => [
    Array.from(
      { length: 28 },
      (_, y) => Array.from(floats.subarray(i * 784 + y * 28, i * 784 + y * 28 + 28)),
    ),
  ]);
  const bodies = [
    input("FP32", [N, 784], Array.from(floats)),
    input("FP32", [N, 1, 28, 28], nested),
    input("UINT8", [N, 784], Array.from(flatPixels)),
    input("UINT8", [N, 28, 28], Array.from(flatPixels)),
    input("BYTES", [N], pixels.map((p) => encodeBase64(encodeGreyPng(p, 28, 28)))),
  ];
  for (const inp of bodies) {
    const req = { id: `req-${inp.datatype}`, inputs: [inp] };
    conforms(inferenceRequestSchema, req);
    const res = await post(INFER, req);
    const body = await jsonOf(res, 200, inferenceResponseSchema);
    assert.equal(body.id, req.id);
    assert.equal(body.model_name, NAME);
    assert.equal(body.model_version, VERSION);
    assert.equal(res.headers.get("x-model-version"), VERSION);
    assertSameAsV1(body);
  }
  // The versioned path answers the same; no id in the request, none in the response.
  const body = await jsonOf(
    await post(`/v2/models/${NAME}/versions/${VERSION}/infer`, { inputs: [bodies[0]] }),
    200,
    inferenceResponseSchema,
  );
  assert.equal("id" in body, false);
  assertSameAsV1(body);
});

Deno.test("infer: `outputs` selects outputs in the order asked; classification gives top-k value:index:label", async () => {
  const req = {
    inputs: [input("UINT8", [N, 784], Array.from(flatPixels))],
    outputs: [{ name: "mu" }, { name: "probabilities", parameters: { classification: 3 } }],
  };
  conforms(inferenceRequestSchema, req);
  const body = await jsonOf(await post(INFER, req), 200, inferenceResponseSchema);
  assert.deepEqual(body.outputs.map((o: { name: string }) => o.name), ["mu", "probabilities"]);
  assert.deepEqual(body.outputs[0].data, v1Mu);
  const cls = body.outputs[1];
  assert.equal(cls.datatype, "BYTES");
  assert.deepEqual(cls.shape, [N, 3]);
  for (let i = 0; i < N; i++) {
    const top = cls.data.slice(i * 3, i * 3 + 3).map((s: string) => {
      assert.match(s, CLASSIFICATION_ELEMENT);
      const [value, index, label] = s.split(":");
      return { value: Number(value), index: Number(index), label };
    });
    assert.equal(top[0].index, v1.predictions[i].index);
    assert.equal(top[0].label, v1.predictions[i].label);
    assert.equal(top[0].value, v1.predictions[i].confidence);
    assert.ok(top[0].value >= top[1].value && top[1].value >= top[2].value);
    assert.equal(top[1].label, served.model.labels[top[1].index]);
  }
});

/** Splits a binary-extension response into its JSON header and its outputs' bytes by name. */
async function binaryParts(res: Response) {
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get("content-type"), "application/octet-stream");
  const bytes = new Uint8Array(await res.arrayBuffer());
  const n = Number(res.headers.get("inference-header-content-length"));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, n)));
  conforms(inferenceResponseSchema, header);
  const parts: Record<string, Uint8Array> = {};
  let at = n;
  for (const o of header.outputs) {
    const size = o.parameters?.binary_data_size;
    if (size === undefined) continue;
    parts[o.name] = bytes.subarray(at, at + size);
    at += size;
  }
  assert.equal(at, bytes.length, "binary parts cover the body");
  return { header, parts };
}

const f32 = (b: Uint8Array) => Array.from(new Float32Array(b.slice().buffer));

Deno.test("binary extension: FP32 and UINT8 raw in, every output raw out, same values as JSON", async () => {
  const cases = [
    { datatype: "FP32", raw: float32Bytes(floats) },
    { datatype: "UINT8", raw: flatPixels },
  ];
  for (const c of cases) {
    const header = {
      inputs: [{
        name: "image",
        datatype: c.datatype,
        shape: [N, 784],
        parameters: { binary_data_size: c.raw.length },
      }],
      parameters: { binary_data_output: true },
    };
    conforms(inferenceRequestSchema, header);
    const { body, headerLength } = joinBody(header, [c.raw]);
    const res = await post(INFER, body, {
      "Content-Type": "application/octet-stream",
      "Inference-Header-Content-Length": String(headerLength),
    });
    const { header: h, parts } = await binaryParts(res);
    assert.deepEqual(h.outputs.map((o: { name: string }) => o.name), [
      "probabilities",
      "mu",
      "logvar",
    ]);
    assert.deepEqual(f32(parts.probabilities), v1Probs);
    assert.deepEqual(f32(parts.mu), v1Mu);
    assert.deepEqual(f32(parts.logvar), v1Logvar);
  }
});

Deno.test("binary extension: BYTES PNGs raw in; per-output binary_data mixes JSON and binary outputs", async () => {
  const raw = writeBytesElements(pixels.map((p) => encodeGreyPng(p, 28, 28)));
  const header = {
    inputs: [{
      name: "image",
      datatype: "BYTES",
      shape: [N],
      parameters: { binary_data_size: raw.length },
    }],
    outputs: [
      { name: "probabilities", parameters: { classification: 1, binary_data: true } },
      { name: "logvar" },
    ],
  };
  const { body, headerLength } = joinBody(header, [raw]);
  const res = await post(INFER, body, { "Inference-Header-Content-Length": String(headerLength) });
  const { header: h, parts } = await binaryParts(res);
  assert.deepEqual(h.outputs[1].data, v1Logvar);
  const labels = readBytesElements(parts.probabilities, "test").map((b) =>
    new TextDecoder().decode(b).split(":")[2]
  );
  assert.deepEqual(labels, v1.predictions.map((p: { label: string }) => p.label));
});

const bad: [string, unknown, RegExp, Record<string, string>?][] = [
  ["not JSON", "{inputs", /request body: is not a JSON inference request/],
  ["no inputs", { inputs: [] }, /inputs: must hold exactly one input/],
  ["unknown input name", {
    inputs: [{ ...input("UINT8", [1, 784], new Array(784).fill(0)), name: "x" }],
  }, /inputs\[0\]\.name: unknown input "x"/],
  [
    "unsupported datatype",
    { inputs: [input("INT64", [1, 784], new Array(784).fill(0))] },
    /inputs\[0\]\.datatype: is "INT64"/,
  ],
  [
    "wrong shape",
    { inputs: [input("FP32", [1, 28, 28], new Array(784).fill(0))] },
    /inputs\[0\]\.shape: FP32 images must have shape/,
  ],
  [
    "too little data",
    { inputs: [input("FP32", [2, 784], new Array(784).fill(0))] },
    /inputs\[0\]\.data: holds 784 elements; the shape needs 1568/,
  ],
  [
    "FP32 outside [0, 1]",
    { inputs: [input("FP32", [1, 784], new Array(784).fill(255))] },
    /inputs\[0\]\.data\[0\]: is 255; FP32 pixels must be numbers in \[0, 1\]/,
  ],
  [
    "UINT8 not a byte",
    { inputs: [input("UINT8", [1, 784], new Array(784).fill(256))] },
    /UINT8 pixels must be integers 0-255/,
  ],
  [
    "BYTES not base64",
    { inputs: [input("BYTES", [1], ["%%%"])] },
    /inputs\[0\]\.data\[0\]: is not valid base64/,
  ],
  [
    "BYTES not an image",
    { inputs: [input("BYTES", [1], [btoa("hello")])] },
    /Cannot decode inputs\[0\]\.data\[0\]/,
  ],
  ["unknown output", {
    inputs: [input("UINT8", [1, 784], new Array(784).fill(0))],
    outputs: [{ name: "z" }],
  }, /outputs\[0\]\.name: unknown output "z"/],
  ["classification on mu", {
    inputs: [input("UINT8", [1, 784], new Array(784).fill(0))],
    outputs: [{ name: "mu", parameters: { classification: 2 } }],
  }, /only "probabilities" holds class scores/],
  ["classification too large", {
    inputs: [input("UINT8", [1, 784], new Array(784).fill(0))],
    outputs: [{ name: "probabilities", parameters: { classification: 11 } }],
  }, /must be an integer 1\.\.10/],
  ["bad preprocess", {
    parameters: { preprocess: "x" },
    inputs: [input("UINT8", [1, 784], new Array(784).fill(0))],
  }, /parameters\.preprocess: must be "auto" or "none"/],
  [
    "header length beyond body",
    { inputs: [] },
    /Inference-Header-Content-Length: must be the byte length/,
    { "Inference-Header-Content-Length": "99999" },
  ],
];

for (const [what, body, message, headers] of bad) {
  Deno.test(`infer rejects ${what} with 400 {"error"}`, async () => {
    const res = await post(INFER, body, headers);
    const b = await jsonOf(res, 400, errorSchema);
    assert.match(b.error, message);
  });
}

Deno.test("infer: binary sizes that do not add up, a model or version not loaded, no model, unknown /v2 path", async () => {
  const raw = new Uint8Array(784);
  const header = {
    inputs: [{
      name: "image",
      datatype: "UINT8",
      shape: [1, 784],
      parameters: { binary_data_size: 700 },
    }],
  };
  let { body, headerLength } = joinBody(header, [raw]);
  let b = await jsonOf(
    await post(INFER, body, { "Inference-Header-Content-Length": String(headerLength) }),
    400,
    errorSchema,
  );
  assert.match(b.error, /binary_data_size: is 700 bytes; \[1 images\] of UINT8 need 784/);
  header.inputs[0].parameters.binary_data_size = 784;
  ({ body, headerLength } = joinBody(header, [raw, new Uint8Array(3)]));
  b = await jsonOf(
    await post(INFER, body, { "Inference-Header-Content-Length": String(headerLength) }),
    400,
    errorSchema,
  );
  assert.match(b.error, /3 binary bytes follow the JSON header/);
  const ok = { inputs: [input("UINT8", [1, 784], Array.from(raw))] };
  await jsonOf(await post("/v2/models/other/infer", ok), 404, errorSchema);
  b = await jsonOf(await post(`/v2/models/${NAME}/versions/1/infer`, ok), 404, errorSchema);
  assert.match(b.error, /has no loaded version "1"/);
  b = await jsonOf(
    await emptyApp.request(INFER, { method: "POST", body: JSON.stringify(ok) }),
    503,
    errorSchema,
  );
  assert.match(b.error, /still loading/);
  await jsonOf(await app.request("/v2/nothing/here"), 404, errorSchema);
  const big = { inputs: [input("UINT8", [257, 784], [])] };
  b = await jsonOf(await post(INFER, big), 413, errorSchema);
  assert.match(b.error, /at most 256/);
});

Deno.test("the spec's worked example request conforms, and an unknown model answers it with 404 {error}", async () => {
  const example = {
    id: "42",
    inputs: [
      { name: "input0", shape: [2, 2], datatype: "UINT32", data: [1, 2, 3, 4] },
      { name: "input1", shape: [3], datatype: "BOOL", data: [true] },
    ],
    outputs: [{ name: "output0" }],
  };
  conforms(inferenceRequestSchema, example);
  // The spec's example response, completed with the model_name the schema requires.
  conforms(inferenceResponseSchema, {
    model_name: "mymodel",
    id: "42",
    outputs: [{
      name: "output0",
      shape: [3, 2],
      datatype: "FP32",
      data: [1.0, 1.1, 2.0, 2.1, 3.0, 3.1],
    }],
  });
  const b = await jsonOf(await post("/v2/models/mymodel/infer", example), 404, errorSchema);
  assert.match(b.error, /Unknown model "mymodel"/);
  // And the schemas can fail: a response without outputs does not conform.
  assert.throws(() => conforms(inferenceResponseSchema, { model_name: "m" }));
  assert.throws(() => conforms(errorSchema, { error: { code: "x", message: "y" } }));
});

Deno.test("infer names the latent space of mu and logvar, as /v1 does (body parameters and X-Latent-Space)", async () => {
  const req = { inputs: [input("UINT8", [N, 784], Array.from(flatPixels))] };
  const res = await post(INFER, req);
  const body = await jsonOf(res.clone(), 200, inferenceResponseSchema);
  assert.equal(typeof v1.latentSpace, "string");
  assert.equal(body.parameters.latent_space, v1.latentSpace);
  assert.equal(res.headers.get("X-Latent-Space"), v1.latentSpace);
  const by = Object.fromEntries(
    body.outputs.map((o: { name: string; parameters?: Record<string, unknown> }) => [o.name, o]),
  );
  assert.equal(by.mu.parameters.latent_space, v1.latentSpace);
  assert.equal(by.logvar.parameters.latent_space, v1.latentSpace);
  assert.equal(by.probabilities.parameters, undefined, "probabilities are not latents");
  // The binary extension keeps both: the size and the space.
  const bin = await post(INFER, { ...req, parameters: { binary_data_output: true } });
  const headerLength = Number(bin.headers.get("Inference-Header-Content-Length"));
  const bytes = new Uint8Array(await bin.arrayBuffer());
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, headerLength)));
  conforms(inferenceResponseSchema, header);
  const mu = header.outputs.find((o: { name: string }) => o.name === "mu");
  assert.equal(mu.parameters.latent_space, v1.latentSpace);
  assert.equal(mu.parameters.binary_data_size, N * served.model.latentSize * 4);
});
