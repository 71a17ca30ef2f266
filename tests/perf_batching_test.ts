/**
 * Adaptive micro-batching (serve/inference/runner.ts) end to end: order and per-request results
 * are exactly those of one-by-one runs (fake session and the real tiny bundle on both backends,
 * through the worker pool), a request that breaks its batch fails alone, a lone request runs at
 * once when idle and waits at most --max-queue-delay-ms under contention, and the batching
 * metrics reach /metrics.
 */
import assert from "node:assert/strict";
import { decodeProbePixels } from "../common/manifest.ts";
import {
  BatchRunner,
  loadBackend,
  loadModel,
  type Session,
  type TensorData,
  WorkerBackend,
} from "../serve/inference/mod.ts";
import { ServiceMetrics } from "../serve/metrics.ts";
import { FIXTURES, manifestOf } from "../testkit/fixtures.ts";

const rows = (values: number[][]): TensorData => ({
  data: Float32Array.from(values.flat()),
  dims: [values.length, values[0].length],
});

/** y = 3x + 1 per value, after a delay; fails a run holding any NaN; counts overlapping runs. */
function fakeSession(opts: { delayMs?: number; concurrency?: number } = {}) {
  const batches: number[] = [];
  let active = 0, maxActive = 0;
  const session: Session = {
    concurrency: opts.concurrency,
    inputNames: ["x"],
    outputNames: ["y"],
    async run(feeds) {
      maxActive = Math.max(maxActive, ++active);
      batches.push(feeds.x.dims[0]);
      await new Promise((r) => setTimeout(r, opts.delayMs ?? 3));
      active--;
      if (feeds.x.data.some((v) => Number.isNaN(v))) throw new Error("NaN input");
      return { y: { data: feeds.x.data.map((v) => 3 * v + 1), dims: feeds.x.dims } };
    },
    async release() {},
  };
  return { session, batches, maxActive: () => maxActive };
}

Deno.test("batching keeps order and gives each request exactly its one-by-one result", async () => {
  const f = fakeSession({ concurrency: 2 });
  const r = new BatchRunner(f.session, { maxBatch: 16, maxQueueDelayMs: 2 });
  const inputs = Array.from({ length: 50 }, (_, i) => [[i, -i, i / 7]]);
  const outs = await Promise.all(inputs.map((x) => r.run({ x: rows(x) })));
  outs.forEach((o, i) => {
    assert.deepEqual(o.y.dims, [1, 3]);
    // What the fake computes for this row alone (float32 in, float32 out).
    const alone = Float32Array.from(inputs[i][0]).map((v) => 3 * v + 1);
    assert.deepEqual(Array.from(o.y.data), Array.from(alone));
  });
  assert.ok(f.batches.some((b) => b > 1), `some runs were batched: ${f.batches}`);
  assert.ok(f.batches.every((b) => b <= 16));
  assert.ok(f.maxActive() <= 2, "never more runs in flight than the pool has workers");
});

Deno.test("a request that breaks its batch fails alone; its neighbours get their results", async () => {
  const f = fakeSession();
  const r = new BatchRunner(f.session, { maxBatch: 8 });
  const first = r.run({ x: rows([[0]]) }); // runs alone; the rest queue behind it into one batch
  const jobs = [1, NaN, 3, 4].map((v) => r.run({ x: rows([[v]]) }));
  const settled = await Promise.allSettled([first, ...jobs]);
  assert.deepEqual(settled.map((s) => s.status), [
    "fulfilled",
    "fulfilled",
    "rejected",
    "fulfilled",
    "fulfilled",
  ]);
  assert.match(String((settled[2] as PromiseRejectedResult).reason), /NaN input/);
  const vals = settled.map((s) => s.status === "fulfilled" ? s.value.y.data[0] : null);
  assert.deepEqual(vals, [1, 4, null, 10, 13]);
  assert.equal(f.batches[1], 4, `the four queued jobs were tried as one batch first: ${f.batches}`);
});

Deno.test("an idle runner dispatches at once; under contention a lone job waits at most maxQueueDelayMs", async () => {
  const f = fakeSession({ delayMs: 60, concurrency: 2 });
  const waits: number[][] = [];
  const r = new BatchRunner(f.session, {
    maxBatch: 64,
    maxQueueDelayMs: 15,
    onBatch: (_rows, s) => waits.push(s.waits),
  });
  const a = r.run({ x: rows([[1]]) }); // idle: no delay at all
  assert.equal(f.batches.length, 1, "dispatched synchronously, before any timer");
  const t0 = performance.now();
  const b = r.run({ x: rows([[2]]) }); // a run is in flight: waits for company, then runs on lane 2
  await b;
  const tookB = performance.now() - t0;
  await a;
  assert.equal(f.batches.length, 2);
  assert.ok(waits[1][0] >= 0.014 && waits[1][0] < 0.045, `queued ${waits[1][0]} s, bound 15 ms`);
  assert.ok(tookB < 60 + 45, `b finished in ${tookB} ms: not held back until a finished`);
});

Deno.test("a full batch is dispatched at once, without waiting out the delay", async () => {
  const f = fakeSession({ delayMs: 40, concurrency: 2 });
  const r = new BatchRunner(f.session, { maxBatch: 4, maxQueueDelayMs: 500 });
  const t0 = performance.now();
  const first = r.run({ x: rows([[0]]) });
  const four = [1, 2, 3, 4].map((v) => r.run({ x: rows([[v]]) }));
  await Promise.all(four);
  assert.ok(performance.now() - t0 < 300, "did not wait for the 500 ms delay");
  assert.deepEqual(f.batches, [1, 4]);
  await first;
});

const images = FIXTURES.flatMap((d) =>
  manifestOf(d).probe.cases.map((c) => decodeProbePixels(c.pixels))
);

const POOLS = [
  { backend: "native", workers: 2, depth: 2, what: "a 2-worker pool" },
  { backend: "wasm", workers: 2, depth: 2, what: "a 2-worker pool, 2 batches in flight per worker" },
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
        const one = async (im: Uint8Array) =>
          model.encode(Float32Array.from(im, (v) => v / 255), 1);
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
          Number(metrics.render().match(new RegExp(`^${name}_sum\\{graph="model"\\} (\\S+)$`, "m"))![1]);
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
