/**
 * Canary in a real server process under load (16 concurrent loops): the CANARY record's 20%
 * of distinct keys reach the canary, each key sticks to its version, and promoting and
 * aborting while requests run lose none of them (0 failures, 0 5xx). The registry is followed
 * by polling (100 ms), as replicas on other hosts would.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  abortCanary,
  promoteCanary,
  readTrafficRecords,
  startCanary,
} from "../registry/traffic.ts";
import { makeRegistry, MODEL, probeImages, VERSIONS } from "../testkit/fixtures.ts";
import { keyedLoad } from "../testkit/keyed_load.ts";
import { startServer } from "../testkit/server_process.ts";
import { waitFor } from "../testkit/wait.ts";

const images = probeImages();

Deno.test("server process: 20% canary share, sticky keys, promote and abort under load lose nothing", async () => {
  const reg = await makeRegistry();
  await startCanary(reg.root, MODEL, VERSIONS[1], 20);
  const server = await startServer([
    "--registry",
    reg.root,
    "--model",
    MODEL,
    "--backend",
    "native",
    "--poll-ms",
    "100",
  ]);
  try {
    await waitFor(async () => {
      const m = await (await fetch(`${server.url}/v1/models`)).json();
      return m.traffic?.canary?.routing === true;
    }, "the server routing to the canary");
    const base = { url: server.url, concurrency: 16, image: (i: number) => images[i % 24] };
    const share = await keyedLoad({ ...base, requests: 3000, key: (i) => `client-${i}` });
    assert.equal(share.failures, 0, share.errors.join("\n"));
    const onCanary = share.versions.filter((v) => v === VERSIONS[1]).length / 30;
    assert.ok(Math.abs(onCanary - 20) <= 2, `canary share ${onCanary}%`);
    const again = await keyedLoad({ ...base, requests: 1000, key: (i) => `client-${i}` });
    assert.deepEqual(again.versions, share.versions.slice(0, 1000), "keys stick to versions");

    const promote = await keyedLoad({
      ...base,
      requests: 3000,
      key: (i) => `p-${i}`,
      onStart: (i) => void (i === 500 && promoteCanary(reg.root, MODEL)),
    });
    assert.equal(promote.failures, 0, promote.errors.join("\n"));
    assert.equal(promote.status5xx, 0);
    assert.equal(promote.versions.at(-1), VERSIONS[1], "the promoted version serves everyone");

    await startCanary(reg.root, MODEL, VERSIONS[2], 50);
    await waitFor(async () => {
      const m = await (await fetch(`${server.url}/v1/models`)).json();
      return m.traffic?.canary?.version === VERSIONS[2] && m.traffic.canary.routing;
    }, "the server routing to the second canary");
    const abort = await keyedLoad({
      ...base,
      requests: 3000,
      key: (i) => `a-${i}`,
      onStart: (i) => void (i === 500 && abortCanary(reg.root, MODEL, "test abort")),
    });
    assert.equal(abort.failures, 0, abort.errors.join("\n"));
    assert.equal(abort.status5xx, 0);
    assert.ok(abort.versions.slice(0, 300).includes(VERSIONS[2]), "the canary served before");
    assert.deepEqual(new Set(abort.versions.slice(-500)), new Set([VERSIONS[1]]));
    assert.equal((await readTrafficRecords(join(reg.root, MODEL))).canary?.state, "aborted");
  } finally {
    await server.stop();
    await reg.cleanup();
  }
});
