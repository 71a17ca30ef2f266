/**
 * Bad-input fuzzing through app.request(): seeded hostile requests (tests/fuzz_cases.ts) must
 * never produce a 5xx or an exception, and every error must be exactly {"error": {code,
 * message}}. The full run is CASES (10,000) cases; CI runs the 1 in FUZZ_EVERY (default 4) whose
 * index is FUZZ_SHARD modulo it, within the suite's time budget, and
 * `deno run -A scripts/fuzz_service.ts` runs them all (nightly). Requests alternate between the
 * native and the wasm backend. Seeded, so a failure reproduces: case i is the same request in
 * every run.
 */
import assert from "node:assert/strict";
import { checkAnswer, fuzzCase } from "../testkit/fuzz_cases.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";

export const CASES = 10_000;
// FUZZ_SEED=n reruns the same generators with other inputs.
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20240601);
const EVERY = Number(Deno.env.get("FUZZ_EVERY") ?? 4);
const SHARD = Number(Deno.env.get("FUZZ_SHARD") ?? 0);

const apps = [await serveBundle("native"), await serveBundle("wasm")].map((s) => s.app);
const indices = Array.from({ length: CASES }, (_, i) => i).filter((i) => i % EVERY === SHARD);

Deno.test(`fuzz: ${indices.length} of ${CASES} hostile requests give zero 5xx and one error shape (seed ${SEED})`, async () => {
  const statuses = new Map<number, number>();
  for (const i of indices) {
    const c = fuzzCase(SEED, i);
    const status = await checkAnswer(await apps[i % 2].request(c.path, c.init), c);
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  }
  const summary = [...statuses.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`)
    .join(", ");
  console.log(`statuses over ${indices.length} cases: ${summary}`);
  for (const s of [200, 400, 404, 413, 415, 422]) {
    assert.ok(statuses.has(s), `the fuzz never produced ${s}; widen the generators`);
  }
});
