/**
 * /v2 requests in /metrics: counted under their route's template (a bounded label however many
 * models and versions are asked for), not as "other", through app.request() on the tiny bundle.
 */
import assert from "node:assert/strict";
import { serveBundle } from "../testkit/serve_bundle.ts";

Deno.test("/v2 requests are counted in /metrics under their route templates", async () => {
  const { app, model } = await serveBundle("native");
  try {
    const v = `/v2/models/${model.name}/versions/${model.version}`;
    const infer = JSON.stringify({
      inputs: [{ name: "image", datatype: "UINT8", shape: [1, 784], data: new Array(784).fill(0) }],
    });
    const post = { method: "POST", headers: { "Content-Type": "application/json" }, body: infer };
    const calls: [string, RequestInit | undefined, number][] = [
      ["/v2/health/ready", undefined, 200],
      [`/v2/models/${model.name}`, undefined, 200],
      [`/v2/models/${model.name}/infer`, post, 200],
      [`/v2/models/${model.name}/infer`, post, 200],
      [`${v}/infer`, post, 200],
      ["/v2/models/no-such-model/infer", post, 404],
    ];
    for (const [path, init, status] of calls) {
      const res = await app.request(path, init);
      assert.equal(res.status, status, `${path}: ${await res.text()}`);
    }
    const text = await (await app.request("/metrics")).text();
    const count = (route: string, status: string) =>
      Number(
        new RegExp(
          `http_requests_total\\{method="[A-Z]+",route="${
            route.replace(/[/.]/g, "\\$&")
          }",status="${status}"\\} (\\d+)`,
        ).exec(text)?.[1] ?? 0,
      );
    assert.equal(count("/v2/health/ready", "200"), 1);
    assert.equal(count("/v2/models/:name", "200"), 1);
    assert.equal(count("/v2/models/:name/infer", "200"), 2);
    assert.equal(count("/v2/models/:name/versions/:version/infer", "200"), 1);
    assert.equal(count("/v2/models/:name/infer", "404"), 1);
    assert.equal(count("other", "200"), 0, "no /v2 request counted as other");
    assert.doesNotMatch(text, new RegExp(`route="[^"]*${model.version}`));
    assert.match(
      text,
      /http_request_duration_seconds_count\{route="\/v2\/models\/:name\/infer"\} 3/,
    );
  } finally {
    await model.close();
  }
});
