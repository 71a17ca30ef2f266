import assert from "node:assert/strict";
import { ServiceMetrics } from "./metrics.ts";

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
