import assert from "node:assert/strict";
import { mergeReplicaExpositions, routeLabel, ServiceMetrics } from "./metrics.ts";

Deno.test("ServiceMetrics renders counters, cumulative histogram buckets and the active model", () => {
  const m = new ServiceMetrics();
  m.requests.inc({ route: "/v1/classify", method: "POST", status: "200" });
  m.requests.inc({ route: "/v1/classify", method: "POST", status: "200" });
  m.latency.observe(0.003, { route: "/v1/classify" });
  m.latency.observe(0.2, { route: "/v1/classify" });
  m.setActive({ name: "vae", version: 'v"1', backend: "wasm" });
  const text = m.render();
  assert.match(text, /# TYPE http_requests_total counter/);
  assert.match(text, /http_requests_total\{method="POST",route="\/v1\/classify",status="200"\} 2/);
  assert.match(text, /http_request_duration_seconds_bucket\{le="0.005",route="\/v1\/classify"\} 1/);
  assert.match(text, /http_request_duration_seconds_bucket\{le="0.25",route="\/v1\/classify"\} 2/);
  assert.match(text, /http_request_duration_seconds_bucket\{le="\+Inf",route="\/v1\/classify"\} 2/);
  assert.match(text, /http_request_duration_seconds_count\{route="\/v1\/classify"\} 2/);
  assert.ok(
    text.includes('model_info{backend="wasm",name="vae",version="v\\"1"} 1'),
    "label values are escaped",
  );
  m.setActive(null);
  assert.ok(!m.render().includes("model_info{"));
  assert.match(m.render(), /model_ready 0/);
});

Deno.test("mergeReplicaExpositions() labels every sample with its replica and keeps one HELP/TYPE per family", () => {
  const a = new ServiceMetrics(), b = new ServiceMetrics();
  a.requests.inc({ route: "/v1/classify", method: "POST", status: "200" }, 3);
  b.requests.inc({ route: "/v1/classify", method: "POST", status: "200" }, 4);
  a.ready.set({}, 1);
  b.latency.observe(0.003, { route: "/v1/classify" });
  const text = mergeReplicaExpositions([{ replica: "11", text: a.render() }, {
    replica: "22",
    text: b.render(),
  }]);
  assert.equal(text.match(/^# TYPE http_requests_total counter$/gm)?.length, 1);
  assert.equal(text.match(/^# HELP http_request_duration_seconds /gm)?.length, 1);
  assert.match(
    text,
    /^http_requests_total\{replica="11",method="POST",route="\/v1\/classify",status="200"\} 3$/m,
  );
  assert.match(
    text,
    /^http_requests_total\{replica="22",method="POST",route="\/v1\/classify",status="200"\} 4$/m,
  );
  assert.match(text, /^model_ready\{replica="11"\} 1$/m);
  assert.match(
    text,
    /^http_request_duration_seconds_count\{replica="22",route="\/v1\/classify"\} 1$/m,
  );
  // Samples stay under their own family's TYPE line.
  const lines = text.trim().split("\n");
  const typeOf = (i: number) => lines.slice(0, i).reverse().find((l) => l.startsWith("# TYPE"));
  const i = lines.findIndex((l) => l.startsWith('http_requests_total{replica="22"'));
  assert.equal(typeOf(i), "# TYPE http_requests_total counter");
});

Deno.test("routeLabel() names fixed routes, templates the /v2 routes and counts the rest as other", () => {
  const fixed = ["/v1/classify", "/metrics"];
  const cases: [string, string][] = [
    ["/v1/classify", "/v1/classify"],
    ["/v2", "/v2"],
    ["/v2/", "/v2"],
    ["/v2/health/live", "/v2/health/live"],
    ["/v2/health/ready", "/v2/health/ready"],
    ["/v2/models/fashion-vae", "/v2/models/:name"],
    ["/v2/models/fashion-vae/ready", "/v2/models/:name/ready"],
    ["/v2/models/fashion-vae/infer", "/v2/models/:name/infer"],
    [
      "/v2/models/fashion-vae/versions/20261126T144331Z-89e10f23",
      "/v2/models/:name/versions/:version",
    ],
    ["/v2/models/a/versions/b/ready", "/v2/models/:name/versions/:version/ready"],
    ["/v2/models/a/versions/b/infer", "/v2/models/:name/versions/:version/infer"],
    ["/v2/models/a/explain", "other"],
    ["/v2/health/dead", "other"],
    ["/v2x", "other"],
    ["/v1/nothing", "other"],
  ];
  for (const [path, label] of cases) assert.equal(routeLabel(path, fixed), label, path);
});
