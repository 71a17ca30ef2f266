/**
 * Slow clients (issue 21, defect 6): a real server per setting, then `--conns` slow
 * connections, half trickling their headers (one header line every 2 s) and half trickling a
 * declared 784-byte body (one byte every 2 s); meanwhile a probe classifies one 28x28 image
 * every 100 ms on a fresh connection. Prints the probe's latency and failures and how many slow
 * connections of each kind the server still holds at the end. "before" runs with the guards
 * off (--body-timeout-ms 0 --max-inflight 0), "after" with the defaults. Loopback only.
 *
 *   npx deno run -A scripts/bench_slowloris.ts [--conns 400] [--seconds 20] [--body-timeout-ms 5000]
 */
import { parseCommandFlags } from "../common/flags.ts";
import { startServer } from "../testkit/server_process.ts";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";
import { runScript } from "./_cli.ts";

const FLAGS = {
  conns: { type: "int", default: 400, help: "slow connections (half headers, half bodies)" },
  seconds: { type: "int", default: 20, help: "how long the slow clients keep trickling" },
  "body-timeout-ms": { type: "int", default: 5000, help: "--body-timeout-ms for the 'after' run" },
} as const;
const USAGE = "Usage: npx deno run -A scripts/bench_slowloris.ts [flags]";
const enc = new TextEncoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One slow client: whether the server still holds its connection at `end`, and its answer. */
async function slow(port: number, kind: "headers" | "body", end: number) {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  let closed = false, status = "";
  const reading = (async () => {
    const buf = new Uint8Array(4096);
    try {
      for (let n; (n = await c.read(buf)) !== null;) {
        status ||= new TextDecoder().decode(buf.subarray(0, n)).split(" ")[1] ?? "";
      }
    } catch { /* reset */ }
    closed = true;
  })();
  try {
    await c.write(enc.encode(
      kind === "headers"
        ? "POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
        : "POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 784\r\n\r\n",
    ));
    for (let i = 0; !closed && performance.now() < end; i++) {
      await sleep(2000);
      await c.write(enc.encode(kind === "headers" ? `X-Slow-${i}: 1\r\n` : "a"));
    }
  } catch { /* the server closed it */ }
  const open = !closed;
  try {
    c.close();
  } catch { /* already closed */ }
  await reading;
  return { open, status };
}

async function probe(url: string, end: number) {
  const body = Uint8Array.from({ length: 784 }, (_, i) => (i * 13) % 256);
  const lat: number[] = [];
  let failed = 0;
  while (performance.now() < end) {
    const t0 = performance.now();
    try {
      const r = await fetch(`${url}/v1/classify`, {
        method: "POST",
        headers: { "Content-Type": "application/octet-stream", Connection: "close" },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      await r.arrayBuffer();
      if (r.status === 200) lat.push(performance.now() - t0);
      else failed++;
    } catch {
      failed++;
    }
    await sleep(100);
  }
  return { lat: lat.sort((a, b) => a - b), failed };
}

async function run(label: string, args: string[], conns: number, seconds: number) {
  const server = await startServer([
    "--bundle",
    TINY_BUNDLE,
    "--backend",
    "native",
    "--no-watch",
    ...args,
  ]);
  try {
    const end = performance.now() + seconds * 1000;
    const kinds = Array.from(
      { length: conns },
      (_, i) => (i % 2 ? "body" : "headers") as "body" | "headers",
    );
    const clients = kinds.map((k) => slow(server.port, k, end));
    const p = await probe(server.url, end);
    const done = await Promise.all(clients);
    const held = (k: string) => kinds.filter((x, i) => x === k && done[i].open).length;
    const timedOut = done.filter((d) => d.status === "408").length;
    const q = (f: number) => (p.lat[Math.floor(f * (p.lat.length - 1))] ?? NaN).toFixed(1);
    console.log(
      `${label.padEnd(6)} | ${held("headers")}/${conns / 2} | ${held("body")}/${
        conns / 2
      } | ${timedOut} | ${q(0.5)} / ${q(0.99)} / ${q(1)} | ${p.lat.length} ok, ${p.failed} failed`,
    );
  } finally {
    await server.stop();
  }
}

async function main(args: string[]): Promise<number> {
  const f = parseCommandFlags(args, FLAGS, USAGE);
  if (!f) return 0;
  const conns = f.conns as number, seconds = f.seconds as number;
  console.log(`${conns} slow connections for ${seconds} s; probe: one 28x28 classify per 100 ms`);
  console.log(
    "run    | slow headers still open | slow bodies still open | bodies answered 408 | probe p50 / p99 / max ms | probes",
  );
  await run("before", ["--body-timeout-ms", "0", "--max-inflight", "0"], conns, seconds);
  await run("after", ["--body-timeout-ms", String(f["body-timeout-ms"])], conns, seconds);
  return 0;
}

if (import.meta.main) await runScript("bench_slowloris", USAGE, FLAGS, main);
