/**
 * Request latency of two checkouts side by side: starts serve/main.ts from each (same bundle,
 * one port each) and drives POST /v1/classify at concurrency 1 with a raw 784-byte body, in
 * alternating rounds so both see the same machine state; prints p50/p90/p99 of each and the
 * ratio of the p50s. Used to check that a change to routing does not slow requests.
 *
 *   npx deno run -A scripts/bench_ab.ts --a <checkout> --b <checkout> [--bundle dir]
 *     [--rounds 8] [--requests 300]
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";

const { values } = parseArgs({
  options: {
    a: { type: "string" },
    b: { type: "string" },
    bundle: { type: "string", default: TINY_BUNDLE },
    rounds: { type: "string", default: "8" },
    requests: { type: "string", default: "300" },
  },
});
if (!values.a || !values.b) throw new Error("bench_ab needs --a <checkout> and --b <checkout>");

function start(dir: string, port: number) {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "serve/main.ts", "--bundle", resolve(values.bundle!), "--port", `${port}`],
    cwd: resolve(dir),
    stdout: "null",
    stderr: "inherit",
  });
  return cmd.spawn();
}

async function ready(port: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      await r.body?.cancel();
      if (r.ok) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the server on port ${port} did not become ready in 60 s`);
}

const body = new Uint8Array(784).map((_, i) => (i * 37) % 256);
async function round(port: number, n: number, into: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    const r = await fetch(`http://127.0.0.1:${port}/v1/classify`, {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body,
    });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`port ${port} answered ${r.status}`);
    into.push(performance.now() - t);
  }
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((x, y) => x - y)[Math.floor(p * (xs.length - 1))];

const sides = [{ name: "a", dir: values.a, port: 18461 }, {
  name: "b",
  dir: values.b,
  port: 18462,
}];
const procs = sides.map((s) => start(s.dir, s.port));
try {
  await Promise.all(sides.map((s) => ready(s.port)));
  const lat: Record<string, number[]> = { a: [], b: [] };
  for (const s of sides) await round(s.port, 500, []); // warm-up (JIT), not counted
  const rounds = Number(values.rounds), n = Number(values.requests);
  for (let r = 0; r < rounds; r++) {
    // Alternate which side goes first so neither always runs on a warmer machine.
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    for (const s of order) await round(s.port, n, lat[s.name]);
    const p = (k: string) => pct(lat[k], 0.5).toFixed(3);
    console.log(`round ${r + 1}/${rounds}: p50 a ${p("a")} ms, b ${p("b")} ms`);
  }
  for (const s of sides) {
    const xs = lat[s.name];
    console.log(
      `${s.name} (${s.dir}): n=${xs.length} p50 ${pct(xs, 0.5).toFixed(3)} ms, p90 ${
        pct(xs, 0.9).toFixed(3)
      } ms, p99 ${pct(xs, 0.99).toFixed(3)} ms`,
    );
  }
  console.log(`p50 b/a: ${(pct(lat.b, 0.5) / pct(lat.a, 0.5)).toFixed(3)}`);
} finally {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => p.status));
}
