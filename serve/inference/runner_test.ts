import assert from "node:assert/strict";
import type { Session, TensorData } from "./backend.ts";
import { BatchRunner } from "./runner.ts";

/** A fake session: output y = 2x per row; records batch sizes and detects overlapping runs. */
function fakeSession(delayMs = 5, inline = false) {
  const batches: number[] = [];
  let active = 0, overlapped = false;
  const session: Session = {
    inline,
    inputNames: ["x"],
    outputNames: ["y"],
    async run(feeds: Record<string, TensorData>) {
      if (active++ > 0) overlapped = true;
      batches.push(feeds.x.dims[0]);
      await new Promise((r) => setTimeout(r, delayMs));
      active--;
      return { y: { data: feeds.x.data.map((v) => v * 2), dims: feeds.x.dims } };
    },
    async release() {},
  };
  return { session, batches, overlapped: () => overlapped };
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
