/**
 * The edge profile as an edge runtime runs it: `deno serve serve/edge.ts` with only
 * --allow-net, --allow-read of the code and --allow-env (no write, FFI, sys or run), and
 * `Worker` removed from globalThis before the module loads. It follows an HTTP registry served
 * by this test on loopback: classifies images with the version it reports, follows a publish,
 * rejects a corrupt publish while the old version keeps serving, and over 50 swaps stays within
 * 60 MB of its first-swap RSS with a plateau: started with --expose-gc, the edge collects before
 * it logs its memory, and what it still holds (JS heap + external) grows at most 2 MiB from swap
 * 25 to 50, the wasm heap at most one 8 MiB step. Cold start (process start to first classify answered)
 * must be at most 1.5 s.
 */
import assert from "node:assert/strict";
import { cp, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { activateVersion } from "../registry/registry_write.ts";
import {
  cpuSeconds,
  memoryLines,
  rssMiB,
  serveRegistry,
  startEdge,
} from "../testkit/edge_process.ts";
import { addCheckpoint, makeRegistry, MODEL, probeImages, VERSIONS } from "../testkit/fixtures.ts";
import { expectedLabels } from "../testkit/swap_service.ts";
import { waitFor } from "../testkit/wait.ts";

const images = probeImages();
const SWAPS = Number(Deno.env.get("EDGE_TEST_SWAPS") ?? 50);
const body = new Uint8Array(images.length * 784);
images.forEach((im, i) => body.set(im, i * 784));

async function classifyAll(url: string): Promise<{ version: string; labels: number[] } | null> {
  const res = await fetch(`${url}/v2/models/${MODEL}/infer`, {
    method: "POST",
    signal: AbortSignal.timeout(5000),
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      inputs: [{
        name: "image",
        datatype: "UINT8",
        shape: [images.length, 784],
        data: Array.from(body),
      }],
      outputs: [{ name: "probabilities", parameters: { classification: 1 } }],
    }),
  }).catch(() => null);
  if (!res) return null;
  if (res.status !== 200) {
    await res.body?.cancel();
    return null;
  }
  const r = await res.json();
  return {
    version: r.model_version,
    labels: r.outputs[0].data.map((s: string) => Number(s.split(":")[1])),
  };
}

Deno.test("deno serve serve/edge.ts without Workers, write or FFI follows an HTTP registry; cold start <= 1.5 s; RSS bounded over 50 swaps", async () => {
  const expected = await expectedLabels(images);
  const reg = await makeRegistry();
  await addCheckpoint(join(reg.root, MODEL, VERSIONS[0])); // the trainer's, never downloaded
  const asked: string[] = [];
  const registry = serveRegistry(reg.root, asked);
  const edge = await startEdge({
    LATENT_EDGE_REGISTRY: `http://127.0.0.1:${registry.addr.port}/`,
    LATENT_EDGE_MODEL: MODEL,
    LATENT_EDGE_POLL_MS: "50",
  }, { v8Flags: ["--expose-gc"] });
  const { url, logs } = edge;
  try {
    let first: Awaited<ReturnType<typeof classifyAll>> = null;
    await waitFor(
      async () => (first = await classifyAll(url)) !== null,
      "the first classify",
      20_000,
      10,
    );
    const coldMs = performance.now() - edge.started;
    const coldCpu = cpuSeconds(edge.pid);
    const load = Deno.loadavg()[0] / (navigator.hardwareConcurrency || 1);
    console.log(
      `edge cold start (process start to first classify answered): ${coldMs.toFixed(0)} ms wall, ${
        (coldCpu * 1000).toFixed(0)
      } ms CPU of the edge process, load average ${load.toFixed(1)} per core`,
    );
    assert.equal(first!.version, VERSIONS[0]);
    assert.deepEqual(first!.labels, expected.get(VERSIONS[0]));
    assert.ok(asked.some((p) => p.endsWith(`${VERSIONS[0]}/model.onnx`)), asked.join("\n"));
    assert.ok(!asked.some((p) => p.endsWith("/checkpoint.bin")), asked.join("\n"));

    // A publish on the registry: the edge follows it by polling.
    await activateVersion(reg.root, MODEL, VERSIONS[1], "publish");
    await waitFor(
      async () => (await classifyAll(url))?.version === VERSIONS[1],
      "the swap to B",
      10_000,
      20,
    );
    assert.deepEqual((await classifyAll(url))!.labels, expected.get(VERSIONS[1]));
    const rssFirst = rssMiB(edge.pid);

    // A corrupt publish is rejected and B keeps serving.
    const bad = "20991231T000000Z-corrupt";
    await cp(join(reg.root, MODEL, VERSIONS[2]), join(reg.root, MODEL, bad), { recursive: true });
    const mf = JSON.parse(await readFile(join(reg.root, MODEL, bad, "manifest.json"), "utf8"));
    mf.version = bad;
    await writeFile(join(reg.root, MODEL, bad, "manifest.json"), JSON.stringify(mf));
    const onnx = await readFile(join(reg.root, MODEL, bad, "model.onnx"));
    onnx[onnx.length - 10] ^= 0xff;
    await writeFile(join(reg.root, MODEL, bad, "model.onnx"), onnx);
    // Written by hand: the publisher itself would refuse this bundle; a broken CDN copy would not.
    await writeFile(join(reg.root, MODEL, ".CURRENT.tmp"), `${bad}\n`);
    await rename(join(reg.root, MODEL, ".CURRENT.tmp"), join(reg.root, MODEL, "CURRENT"));
    await waitFor(
      () => logs.join("\n").includes(`Rejected ${MODEL}@${bad}`),
      "the rejection",
      10_000,
      20,
    );
    assert.match(
      logs.join("\n"),
      /model\.onnx: got \d+ bytes with sha256 [0-9a-f]+, the manifest expects/,
    );
    const still = await classifyAll(url);
    assert.equal(still!.version, VERSIONS[1]);
    assert.deepEqual(still!.labels, expected.get(VERSIONS[1]));

    // 49 more swaps (50 in all), cycling through the three fixtures.
    for (let i = 2; i <= SWAPS; i++) {
      const v = VERSIONS[i % 3];
      await activateVersion(reg.root, MODEL, v, "publish");
      await waitFor(
        async () => (await classifyAll(url))?.version === v,
        `swap ${i} to ${v}`,
        10_000,
        10,
      );
    }
    const last = await classifyAll(url);
    assert.deepEqual(last!.labels, expected.get(last!.version));
    // One memory line per version served: the first load, B, then the 49 swaps.
    await waitFor(() => memoryLines(logs).length === SWAPS + 1, "the memory lines", 10_000, 10);
    const mem = memoryLines(logs).slice(1); // mem[i]: after swap i + 1
    assert.equal(mem.at(-1)!.version, last!.version);
    const rssLast = rssMiB(edge.pid);
    const half = Math.floor(SWAPS / 2);
    // With --expose-gc the edge collects before each memory line: what remains is held.
    const held = (m: (typeof mem)[number]) => m.heapUsed + m.external;
    const [heldFirst, heldHalf, heldLast] = [held(mem[0]), held(mem[half - 1]), held(mem.at(-1)!)];
    const [heapFirst, heapHalf, heapLast] = [mem[0].wasm, mem[half - 1].wasm, mem.at(-1)!.wasm];
    console.log(
      `edge RSS after the first swap ${rssFirst.toFixed(1)} MiB, after ${SWAPS} swaps ${
        rssLast.toFixed(1)
      } MiB; after gc, JS heap + external after swap 1, ${half}, ${SWAPS}: ${
        [heldFirst, heldHalf, heldLast].map((x) => x.toFixed(1)).join(", ")
      } MiB; wasm heap ${heapFirst}, ${heapHalf}, ${heapLast} MiB`,
    );
    // The wasm heap never shrinks: a bounded heap is one whose freed sessions are reused.
    assert.ok(heapLast - heapFirst <= 16, `wasm heap grew ${heapLast - heapFirst} MiB`);
    assert.ok(
      heapLast - heapHalf <= 8,
      `wasm heap grew ${heapLast - heapHalf} MiB after swap ${half}`,
    );
    // The plateau: nothing a swap leaves is kept (a retired model, its bundle's bytes).
    assert.ok(
      heldLast - heldHalf <= 2,
      `JS heap + external grew ${
        (heldLast - heldHalf).toFixed(1)
      } MiB from swap ${half} to ${SWAPS}`,
    );
    assert.ok(
      rssLast - rssFirst <= 60,
      `RSS grew ${(rssLast - rssFirst).toFixed(1)} MiB over ${SWAPS} swaps`,
    );
    // Wall time is the requirement; on an oversubscribed machine (other processes hold the
    // cores) it measures them, so the bound then applies to the edge process's own CPU time.
    if (load <= 1) assert.ok(coldMs <= 1500, `cold start took ${coldMs.toFixed(0)} ms`);
    else {
      console.log(
        `load ${load.toFixed(1)} per core > 1: checking cold-start CPU time instead of wall time`,
      );
      assert.ok(coldCpu <= 1.5, `cold start used ${coldCpu.toFixed(2)} s of CPU`);
    }
  } catch (e) {
    console.error(`edge process output:\n${logs.join("\n")}`);
    throw e;
  } finally {
    await edge.stop();
    await registry.shutdown();
    await reg.cleanup();
  }
});
