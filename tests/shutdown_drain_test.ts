/**
 * SIGTERM with requests in flight, on a real server process: 8 clients have sent their
 * headers and half of a body when the signal arrives; every one of them still gets its 200
 * (0 lost), a new request meanwhile gets 503 (or a refused connection), /readyz says not
 * ready, and the process exits 0 within the grace period once they are done.
 */
import assert from "node:assert/strict";
import { startServer } from "../testkit/server_process.ts";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";

const enc = new TextEncoder();

/** A raw HTTP/1.1 client that sends headers and the first half of the body now, the rest later. */
async function halfSent(port: number, body: Uint8Array) {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  await c.write(enc.encode(
    `POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n` +
      `Content-Length: ${body.length}\r\n\r\n`,
  ));
  await c.write(body.subarray(0, body.length / 2));
  return async (): Promise<string> => {
    try {
      await c.write(body.subarray(body.length / 2));
      let text = "";
      const buf = new Uint8Array(65536);
      while (!/\r\n\r\n[\s\S]*"predictions"|\r\n\r\n[\s\S]*"error"/.test(text)) {
        const n = await c.read(buf);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      return text.split("\r\n")[0] || "disconnected";
    } catch (e) {
      return `disconnected (${(e as Error).name})`;
    } finally {
      c.close();
    }
  };
}

/** Status of a fresh-connection GET/POST, or "refused". */
async function fresh(url: string, path: string, init?: RequestInit): Promise<number | "refused"> {
  try {
    const r = await fetch(url + path, {
      ...init,
      headers: { ...init?.headers, Connection: "close" },
    });
    await r.body?.cancel();
    return r.status;
  } catch {
    return "refused";
  }
}

/** A server process on the tiny bundle (native, no registry watch) with this shutdown grace. */
function serverWithGrace(ms: number) {
  return startServer([
    "--bundle",
    TINY_BUNDLE,
    "--backend",
    "native",
    "--shutdown-grace-ms",
    String(ms),
    "--no-watch",
  ]);
}

Deno.test("SIGTERM with 8 requests in flight: all 8 answer 200, new ones 503, exit 0 within the grace", async () => {
  const grace = 8_000;
  const server = await serverWithGrace(grace);
  const image = Uint8Array.from({ length: 784 * 4 }, (_, i) => (i * 7) % 256);
  const clients = await Promise.all(Array.from({ length: 8 }, () => halfSent(server.port, image)));
  await new Promise((r) => setTimeout(r, 300)); // their handlers are now reading the bodies
  const t0 = performance.now();
  const exited = server.stop();
  await new Promise((r) => setTimeout(r, 300));
  const during = await fresh(server.url, "/v1/classify", {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: image.subarray(0, 784),
  });
  const ready = await fresh(server.url, "/readyz");
  assert.ok(during === 503 || during === "refused", `a new request during the drain got ${during}`);
  assert.ok(ready === 503 || ready === "refused", `/readyz during the drain got ${ready}`);
  const answers = await Promise.all(clients.map((finish) => finish()));
  assert.deepEqual(answers, Array(8).fill("HTTP/1.1 200 OK"), server.log.join("\n"));
  assert.equal(await exited, 0);
  const ms = performance.now() - t0;
  assert.ok(ms < grace, `exit took ${Math.round(ms)} ms`);
  assert.ok(
    server.log.some((l) => /In-flight requests finished in \d+ ms/.test(l)),
    server.log.join("\n"),
  );
  assert.equal(await fresh(server.url, "/healthz"), "refused");
});

Deno.test("SIGTERM: a request still running when the grace period ends does not hold the exit", async () => {
  const server = await serverWithGrace(500);
  const finish = await halfSent(server.port, new Uint8Array(784));
  await new Promise((r) => setTimeout(r, 200));
  const t0 = performance.now();
  assert.equal(await server.stop(), 0);
  const ms = performance.now() - t0;
  assert.ok(ms >= 450 && ms < 3_000, `exit took ${Math.round(ms)} ms with a 500 ms grace`);
  assert.ok(
    server.log.some((l) => /Grace period over: closing connections with 1 request/.test(l)),
  );
  assert.match(await finish(), /disconnected|408|503/);
});
