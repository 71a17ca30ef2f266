/**
 * The /v2 entries of /openapi.json against the service's real answers: each documented answer
 * schema (the Open Inference Protocol's, from ./schemas.ts, as components) accepts what the
 * route returns, its references resolve, and every {name}/{version} in a path is declared.
 */
import assert from "node:assert/strict";
import AjvModule from "ajv";
import { createApp } from "../app.ts";
import { defaultConfig } from "../config.ts";
import { ModelSlot } from "../inference/mod.ts";
import { serveBundle } from "../../testkit/serve_bundle.ts";

// ajv is CommonJS: its class is the module itself at run time, `.default` for the types.
const Ajv = AjvModule as unknown as typeof AjvModule.default;

type Json = Record<string, unknown>;
type Op = { parameters?: { name: string; in: string }[]; responses: Record<string, Json> };

const served = await serveBundle("native");
const { app } = served;
const NAME = served.model.name, VERSION = served.model.version;
const doc = await (await app.request("/openapi.json")).json();
const v2Paths = Object.entries(doc.paths as Record<string, Record<string, Op>>)
  .filter(([p]) => p.startsWith("/v2"));

/** A validator of the document's schema for `status` of `op` (application/json). */
function validatorOf(op: Op, status: number) {
  const ref = (op.responses[status].content as Record<string, { schema: { $ref: string } }>)[
    "application/json"
  ].schema.$ref;
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addSchema({ $id: "openapi", components: doc.components });
  const v = ajv.getSchema(`openapi${ref}`);
  assert.ok(v, `${ref} does not resolve`);
  return (body: unknown) => assert.ok(v(body), `${ref}: ${ajv.errorsText(v.errors)}`);
}

const concrete = (path: string) => path.replace("{name}", NAME).replace("{version}", VERSION);

Deno.test("the nine /v2 routes are documented, each path parameter declared", () => {
  assert.equal(v2Paths.length, 9);
  for (const [path, ops] of v2Paths) {
    for (const op of Object.values(ops)) {
      const declared = (op.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name);
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      assert.deepEqual(declared.sort(), inPath.sort(), path);
    }
  }
});

Deno.test("every documented /v2 GET answer schema accepts the real answer, and the 404", async () => {
  for (const [path, ops] of v2Paths) {
    if (!ops.get) continue;
    const res = await app.request(concrete(path));
    assert.equal(res.status, 200, path);
    validatorOf(ops.get, 200)(await res.json());
    if (!ops.get.responses[404]) continue;
    const missing = await app.request(
      path.replace("{name}", "no-such-model").replace(
        "{version}",
        VERSION,
      ),
    );
    assert.equal(missing.status, 404, path);
    validatorOf(ops.get, 404)(await missing.json());
  }
});

Deno.test("the documented inference request and response schemas accept a real exchange", async () => {
  const op = doc.paths["/v2/models/{name}/infer"].post as Op & { requestBody: Json };
  const request = {
    id: "r1",
    inputs: [{ name: "image", datatype: "UINT8", shape: [1, 784], data: new Array(784).fill(7) }],
    outputs: [{ name: "probabilities", parameters: { classification: 2 } }, { name: "mu" }],
  };
  const ajv = new Ajv({ allErrors: true, strict: false });
  ajv.addSchema({ $id: "openapi", components: doc.components });
  const content = op.requestBody.content as Record<string, { schema: { $ref: string } }>;
  const checkRequest = ajv.getSchema(`openapi${content["application/json"].schema.$ref}`)!;
  assert.ok(checkRequest(request), ajv.errorsText(checkRequest.errors));
  assert.ok(!checkRequest({ inputs: [{ name: "image" }] }), "an input without shape is refused");
  const res = await app.request(concrete("/v2/models/{name}/infer"), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.outputs[0].datatype, "BYTES");
  validatorOf(op, 200)(body);
  assert.throws(() => validatorOf(op, 200)({ ...body, outputs: undefined }), /outputs/);
  const bad = await app.request(concrete("/v2/models/{name}/infer"), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{",
  });
  assert.equal(bad.status, 400);
  validatorOf(op, 400)(await bad.json());
});

Deno.test("with no model the documented 503 answers of /v2 readiness are what the routes send", async () => {
  const empty = createApp({
    slot: new ModelSlot(null, "still loading"),
    config: defaultConfig(),
    log: () => {},
  });
  for (const path of ["/v2/health/ready", "/v2/models/{name}/ready"]) {
    const res = await empty.request(concrete(path));
    assert.equal(res.status, 503, path);
    validatorOf(doc.paths[path].get, 503)(await res.json());
  }
});

Deno.test("close the model", async () => {
  await served.model.close();
});
