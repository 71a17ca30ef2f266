import assert from "node:assert/strict";
import { BufferPool } from "./buffer_pool.ts";

Deno.test("BufferPool.take() reuses the smallest given-back buffer that fits, else allocates", () => {
  const pool = new BufferPool();
  const [big, small] = [pool.take(1000), pool.take(100)];
  assert.equal(pool.bytes, 0);
  pool.give([big, small]);
  assert.equal(pool.bytes, 1100);
  const a = pool.take(90);
  assert.equal(a.buffer, small.buffer);
  assert.equal(a.length, 90);
  const b = pool.take(500);
  assert.equal(b.buffer, big.buffer);
  const c = pool.take(10); // nothing left to reuse
  assert.notEqual(c.buffer, big.buffer);
  assert.notEqual(c.buffer, small.buffer);
});

Deno.test("BufferPool.give() keeps only the last set given back, at their full size", () => {
  const pool = new BufferPool();
  pool.give([pool.take(64), pool.take(32)]);
  const view = pool.take(10); // a 10-byte view of the 32-byte buffer
  pool.give([view]);
  assert.equal(pool.bytes, 32);
  assert.equal(pool.take(32).buffer, view.buffer);
});
