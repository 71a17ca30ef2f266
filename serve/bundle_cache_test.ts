import assert from "node:assert/strict";
import { readBodyInto } from "./bundle_cache.ts";

const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 251);
const server = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen: () => {} },
  (req) => new Response(pattern(Number(new URL(req.url).searchParams.get("n")))),
);
const get = (n: number) => fetch(`http://${server.addr.hostname}:${server.addr.port}/?n=${n}`);

Deno.test("readBodyInto() fills the caller's buffer from a fetched body, or spills a longer one", async () => {
  try {
    for (
      const [n, expect] of [[3_000_000, 3_000_000], [3_000_000, 1_000_000], [500, 2000], [0, 8]]
    ) {
      const mine = new Uint8Array(expect + 16);
      const got = await readBodyInto(await get(n), expect, (k) => mine.subarray(0, k));
      assert.deepEqual(got, pattern(n), `a body of ${n} bytes read with ${expect} expected`);
      // The expected size (or less) lands in the caller's memory (moved: `mine` is detached by
      // the BYOB reads); more needs a larger buffer.
      assert.equal(got.buffer.byteLength === expect + 16, n <= expect, `${n} / ${expect}`);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("readBodyInto() reads a body that is not a byte stream chunk by chunk", async () => {
  const chunks = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(pattern(300).subarray(0, 200));
      c.enqueue(pattern(300).subarray(200));
      c.close();
    },
  });
  const mine = new Uint8Array(300);
  const got = await readBodyInto(new Response(chunks), 300, (k) => mine.subarray(0, k));
  assert.deepEqual(got, pattern(300));
  assert.equal(got.buffer, mine.buffer);
  const longer = await readBodyInto(new Response(pattern(300)), 100, (k) => new Uint8Array(k));
  assert.deepEqual(longer, pattern(300));
});
