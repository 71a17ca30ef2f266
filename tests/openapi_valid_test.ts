/**
 * The served /openapi.json (the app's own document, demo routes included) must be a valid
 * OpenAPI 3.1 document by an external validator's reading of the official JSON schema, so
 * generators and gateways that consume it do not trip over it.
 */
import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { serveBundle } from "../testkit/serve_bundle.ts";

const served = await serveBundle("native");

Deno.test("GET /openapi.json is a valid OpenAPI 3.1 document (external validator)", async () => {
  const res = await served.app.request("/openapi.json");
  assert.equal(res.status, 200);
  const doc = await res.json();
  const result = await new Validator().validate(doc);
  assert.equal(doc.openapi, "3.1.0");
  assert.deepEqual(result.errors ?? [], [], JSON.stringify(result.errors, null, 1));
  assert.equal(result.valid, true);
});

Deno.test({
  name: "the validator rejects a request-body media type carrying a description",
  fn: async () => {
    const res = await served.app.request("/openapi.json");
    const doc = await res.json();
    const post = Object.values(doc.paths as Record<string, Record<string, unknown>>)
      .map((p) => p.post as { requestBody?: { content: Record<string, Record<string, unknown>> } })
      .find((p) => p?.requestBody)!;
    const media = Object.values(post.requestBody!.content)[0];
    media.description = "not allowed here";
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, false);
  },
});

Deno.test("close the model", async () => {
  await served.model.close();
});
