import assert from "node:assert/strict";
import { waitFor } from "./wait.ts";

Deno.test("waitFor() resolves once the condition holds, sync or async", async () => {
  let n = 0;
  await waitFor(() => ++n >= 3, "three polls", 1000, 1);
  assert.equal(n, 3);
  await waitFor(async () => await Promise.resolve(true), "an async condition");
});

Deno.test("waitFor() throws naming what it waited for after the timeout", async () => {
  const t0 = performance.now();
  await assert.rejects(
    waitFor(() => false, "the moon", 30, 5),
    /timed out after 30 ms waiting for the moon/,
  );
  assert.ok(performance.now() - t0 >= 30);
});
