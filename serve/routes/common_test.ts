import assert from "node:assert/strict";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { ApiError, errorBody } from "../errors.ts";
import { defineRoute, intQuery, preprocessQuery, validationHook } from "./common.ts";

function app() {
  const a = new OpenAPIHono({ defaultHook: validationHook });
  const route = createRoute({
    method: "post",
    path: "/items/{id}",
    request: {
      query: z.object({ preprocess: preprocessQuery, n: intQuery("n", 1, 5, { default: 1 }) }),
    },
    responses: { 200: { description: "ok" } },
  });
  defineRoute(a, route, (c, q) => Promise.resolve(c.json({ id: c.req.param("id"), q })));
  a.onError((e, c) =>
    e instanceof ApiError ? c.json(errorBody(e.code, e.message), e.status) : c.text("bug", 500)
  );
  return a;
}

Deno.test("defineRoute() checks the query with the route's schema and names the bad field", async () => {
  const a = app();
  assert.deepEqual(await (await a.request("/items/7", { method: "POST" })).json(), {
    id: "7",
    q: {},
  });
  const ok = await a.request("/items/7?n=3&preprocess=none", { method: "POST" });
  assert.deepEqual((await ok.json()).q, { n: "3", preprocess: "none" });
  for (
    const [q, message] of [
      ["n=6", 'n must be an integer in 1..5, got "6"'],
      ["n=1e0", 'n must be an integer in 1..5, got "1e0"'],
      ["preprocess=AUTO", 'preprocess must be "auto" or "none", got "AUTO"'],
    ]
  ) {
    const res = await a.request(`/items/7?${q}`, { method: "POST" });
    assert.equal(res.status, 400, q);
    assert.deepEqual(await res.json(), errorBody("bad_parameter", message));
  }
});

Deno.test("defineRoute() puts the route, its path and query parameters in the document", () => {
  const doc = app().getOpenAPI31Document({ openapi: "3.1.0", info: { title: "t", version: "1" } });
  const op = doc.paths!["/items/{id}"].post!;
  const n = op.parameters!.find((p) => "name" in p && p.name === "n") as { schema: unknown };
  assert.deepEqual(n.schema, { type: "integer", minimum: 1, maximum: 5, default: 1 });
  assert.ok(op.parameters!.some((p) => "name" in p && p.name === "preprocess"));
});

Deno.test("defineRoute() without a query hands over none; document: false leaves it unlisted", async () => {
  const a = new OpenAPIHono({ defaultHook: validationHook });
  const route = (path: string) =>
    createRoute({ method: "get", path, responses: { 200: { description: "ok" } } });
  defineRoute(a, route("/listed/{id}"), (c, q) => c.json({ id: c.req.param("id"), q }));
  defineRoute(a, route("/unlisted"), (c) => c.text("here"), { document: false });
  assert.deepEqual(await (await a.request("/listed/3?x=1")).json(), { id: "3", q: {} });
  assert.equal(await (await a.request("/unlisted")).text(), "here");
  const doc = a.getOpenAPI31Document({ openapi: "3.1.0", info: { title: "t", version: "1" } });
  assert.deepEqual(Object.keys(doc.paths!), ["/listed/{id}"]);
});
