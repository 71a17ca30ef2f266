import assert from "node:assert/strict";
import { batchSummary, parseInferenceMetrics } from "./metrics.ts";

const scrape = (k: number) =>
  parseInferenceMetrics([
    "# HELP inference_batch_size Images per run.",
    `inference_batch_size_count{graph="model"} ${10 * k}`,
    `inference_batch_size_sum{graph="model"} ${80 * k}`,
    `inference_queue_seconds_count{graph="model"} ${80 * k}`,
    `inference_queue_seconds_sum{graph="model"} ${0.04 * k}`,
    `inference_queue_seconds_bucket{graph="model",le="0.0005"} ${30 * k}`,
    `inference_queue_seconds_bucket{graph="model",le="0.001"} ${79 * k}`,
    `inference_queue_seconds_bucket{graph="model",le="+Inf"} ${80 * k}`,
    `inference_run_seconds_sum{graph="model"} ${0.02 * k}`,
    `inference_compute_seconds_sum{graph="model"} ${0.01 * k}`,
    `http_requests_total{route="/v1/classify"} ${99 * k}`,
  ].join("\n"));

Deno.test("parseInferenceMetrics() keeps the inference_* samples by name and labels", () => {
  const m = scrape(1);
  assert.equal(m.get('inference_batch_size_count{graph="model"}'), 10);
  assert.equal(m.get('inference_queue_seconds_bucket{graph="model",le="+Inf"}'), 80);
  assert.equal([...m.keys()].some((k) => k.startsWith("http_")), false);
});

Deno.test("batchSummary() of two scrapes: the differences as runs, means and bucket bounds", () => {
  const s = batchSummary(scrape(1), scrape(3), 2, 1);
  assert.equal(s.runs, 20);
  assert.equal(s.meanBatch, 8);
  assert.ok(Math.abs(s.queueMeanMs - 0.5) < 1e-9);
  assert.equal(s.queueP50Ms, 1, "60 of 160 waited <= 0.5 ms: the median is in the 1 ms bucket");
  assert.equal(s.queueP99Ms, Infinity);
  assert.ok(Math.abs(s.runMeanMs - 2) < 1e-9 && Math.abs(s.computeMeanMs - 1) < 1e-9);
  assert.ok(Math.abs(s.busy - 0.01) < 1e-9, "0.02 s computing in 2 s on 1 thread");
});
