/**
 * Adaptive micro-batching (serve/inference/runner.ts) end to end: on the real tiny bundle, both
 * backends, through the worker pool, batched results are exactly those of one-by-one runs, and
 * the batching metrics reach /metrics. The batching policy itself (order, a failing request,
 * the queue delay, full batches) is unit-tested on a fake session in
 * serve/inference/runner_test.ts.
 */
import assert from "node:assert/strict";
import { loadBackend, loadModel, WorkerBackend } from "../serve/inference/mod.ts";
import { ServiceMetrics } from "../serve/metrics.ts";
import { FIXTURES, probeImages } from "../testkit/fixtures.ts";

const images = probeImages();

const POOLS = [
  { backend: "native", workers: 2, depth: 2, what: "a 2-worker pool" },
  {
    backend: "wasm",
    workers: 2,
    depth: 2,
    what: "a 2-worker pool, 2 batches in flight per worker",
  },
  // Pipelined hard: a third batch is sent while one runs and one waits in the same worker.
  { backend: "wasm", workers: 1, depth: 3, what: "1 worker with 3 batches in flight" },
] as const;

for (const { backend, workers, depth, what } of POOLS) {
  Deno.test({
    name: `${backend}: batched results through ${what} equal one-by-one runs exactly`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const { backend: b } = await loadBackend(backend, { threads: 1, workers, depth });
      const metrics = new ServiceMetrics();
      const model = await loadModel(FIXTURES[0], {
        backend: b,
        maxBatch: 64,
        maxQueueDelayMs: 2,
        onBatch: (graph, rows, stats) => metrics.observeBatch(graph, rows, stats),
        onRun: (graph, s, _rows, compute) => metrics.observeRun(graph, s, compute),
      });
      try {
        const one = (im: Uint8Array) => model.encode(Float32Array.from(im, (v) => v / 255), 1);
        const alone: Awaited<ReturnType<typeof one>>[] = [];
        for (const im of images) alone.push(await one(im));
        const before = metrics.batchSize.count({ graph: "model" });
        // 4 rounds of all 24 images at once: they queue behind each other and get batched.
        const together = await Promise.all(
          Array.from({ length: 4 }, () => images.map(one)).flat(),
        );
        const runs = metrics.batchSize.count({ graph: "model" }) - before;
        assert.ok(runs < together.length, `${together.length} requests in ${runs} runs`);
        together.forEach((t, i) => {
          const a = alone[i % images.length];
          // Exact: each row of a batched run is computed as it is alone on these kernels.
          assert.deepEqual(Array.from(t.probabilities), Array.from(a.probabilities), `image ${i}`);
          assert.deepEqual(Array.from(t.mu), Array.from(a.mu));
          assert.deepEqual(Array.from(t.logvar), Array.from(a.logvar));
        });
        // Computing is part of a run's wall time; for a worker's run, the round trip is the rest.
        const sum = (name: string) =>
          Number(
            metrics.render().match(new RegExp(`^${name}_sum\\{graph="model"\\} (\\S+)$`, "m"))![1],
          );
        const compute = sum("inference_compute_seconds"), wall = sum("inference_run_seconds");
        assert.ok(compute > 0 && compute <= wall, `compute ${compute} s of ${wall} s`);
        const text = metrics.render();
        for (
          const name of [
            "inference_batch_size",
            "inference_batch_requests",
            "inference_queue_seconds",
            "inference_run_seconds",
            "inference_compute_seconds",
          ]
        ) {
          assert.match(text, new RegExp(`^${name}_count\\{graph="model"\\} [1-9]\\d*$`, "m"), name);
        }
      } finally {
        await model.close();
        if (b instanceof WorkerBackend) b.close();
      }
    },
  });
}
