/**
 * Large images never stall the service (a real server process, native backend):
 *   - 8 of the hostile 5000x5000 16-bit RGBA PNGs in flight (legal under the 25-megapixel
 *     limit, 200 MB each once decoded) are refused from their header by the decoded-bytes
 *     limit; a concurrent 28x28 classify answers within 250 ms and RSS grows by <= 150 MB;
 *   - legal large PNGs decode off the HTTP thread (serve/decode_pool.ts): while three
 *     3000x3000 RGBA images decode, 28x28 classifies keep answering within 250 ms.
 */
import assert from "node:assert/strict";
import { bigPng } from "./png_factory.ts";
import { startServer } from "../testkit/server_process.ts";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";

function rssMb(pid: number): number {
  const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : NaN;
}

const small = Uint8Array.from({ length: 784 }, (_, i) => (i * 13) % 256);

async function post(url: string, type: string, body: Uint8Array) {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/classify`, {
    method: "POST",
    headers: { "Content-Type": type },
    body: body as Uint8Array<ArrayBuffer>,
  });
  const json = await r.json();
  return { status: r.status, ms: performance.now() - t0, code: json.error?.code };
}

/** Classifies one 28x28 image every 20 ms until `until` settles; returns the latencies. */
async function probe(url: string, until: Promise<unknown>): Promise<number[]> {
  let done = false;
  until.finally(() => (done = true));
  const ms: number[] = [];
  while (!done) {
    const r = await post(url, "application/octet-stream", small);
    assert.equal(r.status, 200);
    ms.push(r.ms);
    await new Promise((res) => setTimeout(res, 20));
  }
  return ms;
}

async function withServer(fn: (url: string, pid: number) => Promise<void>) {
  const server = await startServer(["--bundle", TINY_BUNDLE, "--backend", "native", "--no-watch"]);
  try {
    for (let i = 0; i < 5; i++) await post(server.url, "application/octet-stream", small); // warm
    await fn(server.url, server.pid);
  } finally {
    await server.stop();
  }
}

Deno.test("8 hostile 16-bit 5000x5000 PNGs in flight: refused, a 28x28 answers <= 250 ms, RSS +<= 150 MB", async () => {
  const png16 = await bigPng(5000, 5000, { depth: 16, channels: 4, flat: true });
  await withServer(async (url, pid) => {
    const rss0 = rssMb(pid);
    let peak = rss0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 10);
    try {
      const big = Promise.all(Array.from({ length: 8 }, () => post(url, "image/png", png16)));
      const lat = await probe(url, big);
      const answers = await big;
      assert.deepEqual(answers.map((a) => a.status), Array(8).fill(413));
      assert.ok(answers.every((a) => a.code === "image_too_large"));
      assert.ok(Math.max(...lat) <= 250, `28x28 latencies ${lat.map(Math.round).join(", ")} ms`);
      // One more probe after: the service is as quick as before.
      assert.ok((await post(url, "application/octet-stream", small)).ms <= 250);
    } finally {
      clearInterval(sampler);
    }
    assert.ok(
      peak - rss0 <= 150,
      `RSS grew ${Math.round(peak - rss0)} MB (${Math.round(rss0)} -> ${Math.round(peak)})`,
    );
    console.log(
      `RSS ${Math.round(rss0)} -> peak ${Math.round(peak)} MB (png ${png16.length} bytes)`,
    );
  });
});

Deno.test("legal large PNGs decode off the HTTP thread: 28x28 classifies stay <= 250 ms meanwhile", async () => {
  const png = await bigPng(3000, 3000, { depth: 8, channels: 4 });
  await withServer(async (url) => {
    const t0 = performance.now();
    const big = Promise.all(Array.from({ length: 3 }, () => post(url, "image/png", png)));
    const lat = await probe(url, big);
    const answers = await big;
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 200]);
    assert.ok(lat.length >= 5, `only ${lat.length} probes while the large images decoded`);
    const sorted = [...lat].sort((a, b) => a - b);
    console.log(
      `3 x 3000x3000 decoded in ${
        Math.round(performance.now() - t0)
      } ms; ${lat.length} probes, p50 ${Math.round(sorted[sorted.length >> 1])} ms, max ${
        Math.round(sorted[sorted.length - 1])
      } ms`,
    );
    assert.ok(
      sorted[sorted.length - 1] <= 250,
      `28x28 latencies ${lat.map(Math.round).join(", ")} ms`,
    );
  });
});
