/**
 * Slow clients (issue 21, defect 6): a real server per setting, then `--conns` slow
 * connections, half trickling their headers (one header line every 2 s) and half trickling a
 * declared 784-byte body (one byte every 2 s); meanwhile a probe classifies one 28x28 image
 * every 100 ms on a fresh connection. Prints the probe's latency and failures and how many slow
 * connections of each kind the server still holds at the end. "before" runs with the guards
 * off (--body-timeout-ms 0 --max-inflight 0), "after" with the defaults, and with --nginx, "front"
 * puts nginx in front of the "after" server with the configuration docs/performance.md shows
 * (header and body timeouts, keep-alive timeout, a connection cap): Deno's server has no
 * header or idle timeouts nor a connection cap of its own. Loopback only.
 *
 *   npx deno run -A scripts/bench_slowloris.ts [--conns 400] [--seconds 20] [--nginx /usr/sbin/nginx]
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCommandFlags } from "../common/flags.ts";
import { startServer } from "../testkit/server_process.ts";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";
import { runScript } from "./_cli.ts";

const FLAGS = {
  conns: { type: "int", default: 400, help: "slow connections (half headers, half bodies)" },
  seconds: { type: "int", default: 20, help: "how long the slow clients keep trickling" },
  "body-timeout-ms": { type: "int", default: 5000, help: "--body-timeout-ms for the 'after' run" },
  nginx: { type: "string", help: "nginx binary: also measure the server behind it ('front')" },
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

/** The front documented in docs/performance.md, on `port`, proxying to `upstream`. */
export function nginxConfig(dir: string, port: number, upstream: number): string {
  return `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log crit;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_header_timeout 5s;   # the whole request head
  client_body_timeout 5s;     # between two reads of the body
  keepalive_timeout 15s;
  send_timeout 10s;
  client_max_body_size 4m;    # the service's --max-body-bytes
  limit_conn_zone $server_name zone=all:1m;
  limit_conn all 1000;        # requests at once, all clients
  upstream service { server 127.0.0.1:${upstream}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Runs fn with nginx listening on a free port in front of `upstream`. */
async function withNginx(bin: string, upstream: number, fn: (port: number) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), "bench-nginx-"));
  const port = freePort();
  await writeFile(join(dir, "nginx.conf"), nginxConfig(dir, port, upstream));
  const child = new Deno.Command(bin, {
    args: ["-p", dir, "-c", join(dir, "nginx.conf")],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  try {
    for (let i = 0; i < 100; i++) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch {
        await sleep(50);
      }
    }
    await fn(port);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await rm(dir, { recursive: true, force: true });
  }
}

/** The slow clients and the probe against `port`; prints one row. */
async function attack(label: string, port: number, conns: number, seconds: number) {
  const end = performance.now() + seconds * 1000;
  const kinds = Array.from(
    { length: conns },
    (_, i) => (i % 2 ? "body" : "headers") as "body" | "headers",
  );
  const clients = kinds.map((k) => slow(port, k, end));
  const p = await probe(`http://127.0.0.1:${port}`, end);
  const done = await Promise.all(clients);
  const held = (k: string) => kinds.filter((x, i) => x === k && done[i].open).length;
  const timedOut = done.filter((d) => d.status === "408").length;
  const q = (f: number) => (p.lat[Math.floor(f * (p.lat.length - 1))] ?? NaN).toFixed(1);
  console.log(
    `${label.padEnd(6)} | ${held("headers")}/${conns / 2} | ${held("body")}/${
      conns / 2
    } | ${timedOut} | ${q(0.5)} / ${q(0.99)} / ${q(1)} | ${p.lat.length} ok, ${p.failed} failed`,
  );
}

async function run(label: string, args: string[], conns: number, seconds: number, nginx?: string) {
  const server = await startServer([
    "--bundle",
    TINY_BUNDLE,
    "--backend",
    "native",
    "--no-watch",
    ...args,
  ]);
  try {
    if (nginx) await withNginx(nginx, server.port, (port) => attack(label, port, conns, seconds));
    else await attack(label, server.port, conns, seconds);
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
  const after = ["--body-timeout-ms", String(f["body-timeout-ms"])];
  await run("after", after, conns, seconds);
  if (f.nginx) await run("front", after, conns, seconds, f.nginx as string);
  return 0;
}

if (import.meta.main) await runScript("bench_slowloris", USAGE, FLAGS, main);
