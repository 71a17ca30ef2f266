import assert from "node:assert/strict";
import type { Session, TensorData } from "./backend.ts";
import { BatchRunner } from "./runner.ts";

/**
 * A fake session: y = fn(x) per value (default 2x), after `delayMs`; fails a run holding any
 * NaN; records batch sizes and counts overlapping runs (at most `concurrency` are expected).
 */
function fakeSession(
  delayMs = 5,
  inline = false,
  opts: { concurrency?: number; fn?: (v: number) => number } = {},
) {
  const fn = opts.fn ?? ((v: number) => v * 2);
  const batches: number[] = [];
  let active = 0, maxActive = 0;
  const session: Session = {
    inline,
    concurrency: opts.concurrency,
    inputNames: ["x"],
    outputNames: ["y"],
    async run(feeds: Record<string, TensorData>) {
      maxActive = Math.max(maxActive, ++active);
      batches.push(feeds.x.dims[0]);
      await new Promise((r) => setTimeout(r, delayMs));
      active--;
      if (feeds.x.data.some((v) => Number.isNaN(v))) throw new Error("NaN input");
      return { y: { data: feeds.x.data.map(fn), dims: feeds.x.dims } };
    },
    async release() {},
  };
  return { session, batches, overlapped: () => maxActive > 1, maxActive: () => maxActive };
}

const rows = (values: number[][]): TensorData => ({
  data: Float32Array.from(values.flat()),
  dims: [values.length, values[0].length],
});

Deno.test("BatchRunner never overlaps runs and coalesces waiting jobs into one batch", async () => {
  const f = fakeSession();
  const r = new BatchRunner(f.session, { maxBatch: 8 });
  const jobs = Array.from({ length: 6 }, (_, i) => r.run({ x: rows([[i, i + 0.5]]) }));
  const outs = await Promise.all(jobs);
  outs.forEach((o, i) => assert.deepEqual(Array.from(o.y.data), [2 * i, 2 * i + 1]));
  assert.equal(f.overlapped(), false);
  assert.deepEqual(f.batches, [1, 5]); // first job runs alone, the five queued behind it run together
});

Deno.test("BatchRunner keeps batches within maxBatch and splits outputs per job", async () => {
  const f = fakeSession();
  const r = new BatchRunner(f.session, { maxBatch: 4, onBatch: () => {} });
  const outs = await Promise.all([
    r.run({ x: rows([[1], [2]]) }),
    r.run({ x: rows([[3], [4], [5]]) }),
    r.run({ x: rows([[6]]) }),
    r.run({ x: rows([[7], [8]]) }),
  ]);
  assert.deepEqual(outs.map((o) => Array.from(o.y.data)), [[2, 4], [6, 8, 10], [12], [14, 16]]);
  assert.ok(f.batches.every((b) => b <= 4), `batches ${f.batches}`);
  assert.deepEqual(outs.map((o) => o.y.dims[0]), [2, 3, 1, 2]);
});

Deno.test("BatchRunner rejects a job above maxBatch, inconsistent dims, and runs after close()", async () => {
  const r = new BatchRunner(fakeSession().session, { maxBatch: 2 });
  await assert.rejects(r.run({ x: rows([[1], [2], [3]]) }), /1\.\.2 rows/);
  await assert.rejects(r.run({ x: { data: new Float32Array(3), dims: [2, 1] } }), /holds 3 values/);
  r.close();
  await assert.rejects(r.run({ x: rows([[1]]) }), /released/);
});

Deno.test("BatchRunner rejects every job of a failed batch and keeps serving", async () => {
  let fail = true;
  const session: Session = {
    inputNames: ["x"],
    outputNames: ["y"],
    async run(feeds) {
      await new Promise((r) => setTimeout(r, 2));
      if (fail) throw new Error("boom");
      return { y: feeds.x };
    },
    async release() {},
  };
  const r = new BatchRunner(session, { maxBatch: 8 });
  const results = await Promise.allSettled([r.run({ x: rows([[1]]) }), r.run({ x: rows([[2]]) })]);
  assert.ok(results.every((x) => x.status === "rejected"));
  fail = false;
  assert.deepEqual(Array.from((await r.run({ x: rows([[3]]) })).y.data), [3]);
});

Deno.test("BatchRunner with an in-process (inline) session: jobs of the same event-loop turn share one run", async () => {
  const f = fakeSession(5, true);
  const r = new BatchRunner(f.session, { maxBatch: 8 });
  const outs = await Promise.all(Array.from({ length: 6 }, (_, i) => r.run({ x: rows([[i]]) })));
  outs.forEach((o, i) => assert.deepEqual(Array.from(o.y.data), [2 * i]));
  assert.deepEqual(f.batches, [6]); // not [1, 5]: the first job waited for the turn, not a timer
  // A lone job still starts within the turn: far below a timer's resolution.
  const g = fakeSession(0, true);
  const lone = new BatchRunner(g.session, { maxBatch: 8, maxQueueDelayMs: 50 });
  const t0 = performance.now();
  await lone.run({ x: rows([[1]]) });
  assert.ok(performance.now() - t0 < 25, `a lone job took ${performance.now() - t0} ms`);
  assert.equal(f.overlapped(), false);
});

Deno.test("batching keeps order and gives each request exactly its one-by-one result", async () => {
  const f = fakeSession(3, false, { concurrency: 2, fn: (v) => 3 * v + 1 });
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
  const f = fakeSession(3, false, { fn: (v) => 3 * v + 1 });
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
  const f = fakeSession(60, false, { concurrency: 2 });
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
  const f = fakeSession(40, false, { concurrency: 2 });
  const r = new BatchRunner(f.session, { maxBatch: 4, maxQueueDelayMs: 500 });
  const t0 = performance.now();
  const first = r.run({ x: rows([[0]]) });
  const four = [1, 2, 3, 4].map((v) => r.run({ x: rows([[v]]) }));
  await Promise.all(four);
  assert.ok(performance.now() - t0 < 300, "did not wait for the 500 ms delay");
  assert.deepEqual(f.batches, [1, 4]);
  await first;
});

Deno.test("BatchRunner splits large jobs into chunks so a small job waits for one short run, not whole batches", async () => {
  // Run time grows with rows, as for a real model.
  const batches: number[] = [];
  let computed = 0; // rows of the runs finished so far
  const session: Session = {
    inputNames: ["x"],
    outputNames: ["y"],
    async run(feeds: Record<string, TensorData>) {
      batches.push(feeds.x.dims[0]);
      await new Promise((r) => setTimeout(r, feeds.x.dims[0] * 0.1));
      computed += feeds.x.dims[0];
      return { y: { data: feeds.x.data.map((v) => v * 2), dims: feeds.x.dims } };
    },
    async release() {},
  };
  const big = (k: number) => rows(Array.from({ length: 256 }, (_, i) => [k * 1000 + i]));
  for (const chunkRows of [0, 32]) {
    batches.length = 0;
    computed = 0;
    const r = new BatchRunner(session, { maxBatch: 256, chunkRows });
    const large = [r.run({ x: big(1) }), r.run({ x: big(2) })];
    let waitedFor = -1;
    const small = r.run({ x: rows([[7]]) }).then((o) => {
      waitedFor = computed;
      return o;
    });
    const [a, b, s] = await Promise.all([...large, small]);
    assert.deepEqual(Array.from(s.y.data), [14]);
    assert.deepEqual(Array.from(a.y.data), Array.from(big(1).data, (v) => 2 * v), "rows in order");
    assert.deepEqual(Array.from(b.y.data), Array.from(big(2).data, (v) => 2 * v));
    if (chunkRows === 0) {
      assert.equal(waitedFor, 513, "without chunks the small job waits for both whole batches");
    } else {
      // The first chunk was already running; the small job rides in the next run.
      assert.equal(waitedFor, 32 + 33, `the small job waited for ${waitedFor} rows of work`);
      assert.ok(batches.every((n) => n <= 33), `runs of ${batches.join(", ")} rows`);
      assert.equal(batches.reduce((x, y) => x + y, 0), 513);
    }
  }
});
