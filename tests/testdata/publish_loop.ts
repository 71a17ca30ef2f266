/**
 * A publisher that never stops, for tests/publish_chaos_test.ts to kill -9 at random points:
 * publishes the bundle directories given as arguments round-robin into the registry named by
 * the first argument, pruning to one kept version so every step of a publish (copy, verify,
 * rename, HISTORY and CURRENT writes, prune) keeps happening. Prints "ready" once it runs.
 */
import { publishBundle } from "../../registry/registry_write.ts";

const [registry, ...bundles] = Deno.args;
console.log("ready");
for (let i = 0;; i++) {
  await publishBundle(bundles[i % bundles.length], { registry, keep: 1 });
}
