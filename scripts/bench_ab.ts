/**
 * Request latency of two checkouts side by side: starts serve/main.ts from each (same bundle,
 * one port each) and drives one route at concurrency 1 with one 28x28 image, in alternating
 * rounds so both see the same machine state; prints p50/p90/p99 of each, the ratio of the
 * p50s and the median of each round's ratio (steadier on a machine whose load changes). Used to check that a change to routing does not slow requests. Routes (--route):
 * classify (POST /v1/classify, a raw 784-byte body), v2-json (POST /v2/.../infer, UINT8
 * [1,784] as JSON numbers) and v2-binary (the same through the binary tensor extension).
 *
 *   npx deno run -A scripts/bench_ab.ts --a <checkout> --b <checkout> [--bundle dir]
 *     [--route classify|v2-json|v2-binary] [--rounds 8] [--requests 300]
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { binaryMessage } from "../serve/v2/binary.ts";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";

const { values } = parseArgs({
  options: {
    a: { type: "string" },
    b: { type: "string" },
    bundle: { type: "string", default: TINY_BUNDLE },
    rounds: { type: "string", default: "8" },
    requests: { type: "string", default: "300" },
    route: { type: "string", default: "classify" },
  },
});
if (!values.a || !values.b) throw new Error("bench_ab needs --a <checkout> and --b <checkout>");
const ROUTES = ["classify", "v2-json", "v2-binary"];
if (!ROUTES.includes(values.route!)) {
  throw new Error(`--route must be one of ${ROUTES.join(", ")}, got ${values.route}`);
}

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

const pixels = new Uint8Array(784).map((_, i) => (i * 37) % 256);

interface Target {
  path: string;
  headers: Record<string, string>;
  body: Uint8Array<ArrayBuffer>;
}

/** The request --route sends; V2 names the model the server loaded (from /v1/models). */
async function target(port: number): Promise<Target> {
  if (values.route === "classify") {
    return {
      path: "/v1/classify",
      headers: { "Content-Type": "application/octet-stream" },
      body: pixels,
    };
  }
  const models = await (await fetch(`http://127.0.0.1:${port}/v1/models`)).json();
  const path = `/v2/models/${models.active.name}/infer`;
  const input = { name: "image", datatype: "UINT8", shape: [1, 784] };
  if (values.route === "v2-json") {
    const json = JSON.stringify({ inputs: [{ ...input, data: Array.from(pixels) }] });
    return {
      path,
      headers: { "Content-Type": "application/json" },
      body: new TextEncoder().encode(json),
    };
  }
  const header = { inputs: [{ ...input, parameters: { binary_data_size: pixels.length } }] };
  return { path, ...binaryMessage(header, [pixels]) };
}

async function round(port: number, t: Target, n: number, into: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const start = performance.now();
    const r = await fetch(`http://127.0.0.1:${port}${t.path}`, {
      method: "POST",
      headers: t.headers,
      body: t.body,
    });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`port ${port} answered ${r.status} on ${t.path}`);
    into.push(performance.now() - start);
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
  const targets = await Promise.all(sides.map((s) => target(s.port)));
  console.log(`route ${values.route}: POST ${targets[0].path}`);
  const lat: Record<string, number[]> = { a: [], b: [] };
  for (const [i, s] of sides.entries()) await round(s.port, targets[i], 500, []); // warm-up (JIT)
  const rounds = Number(values.rounds), n = Number(values.requests);
  const ratios: number[] = []; // per round, when both sides ran under nearly the same load
  for (let r = 0; r < rounds; r++) {
    // Alternate which side goes first so neither always runs on a warmer machine.
    const order = r % 2 === 0 ? [0, 1] : [1, 0];
    const now: number[][] = [[], []];
    for (const i of order) await round(sides[i].port, targets[i], n, now[i]);
    sides.forEach((s, i) => lat[s.name].push(...now[i]));
    const [pa, pb] = now.map((xs) => pct(xs, 0.5));
    ratios.push(pb / pa);
    console.log(
      `round ${r + 1}/${rounds}: p50 a ${pa.toFixed(3)} ms, b ${pb.toFixed(3)} ms, b/a ${
        (pb / pa).toFixed(3)
      }`,
    );
  }
  for (const s of sides) {
    const xs = lat[s.name];
    console.log(
      `${s.name} (${s.dir}): n=${xs.length} p50 ${pct(xs, 0.5).toFixed(3)} ms, p90 ${
        pct(xs, 0.9).toFixed(3)
      } ms, p99 ${pct(xs, 0.99).toFixed(3)} ms`,
    );
  }
  console.log(
    `p50 b/a: ${(pct(lat.b, 0.5) / pct(lat.a, 0.5)).toFixed(3)} overall, ${
      pct(ratios, 0.5).toFixed(3)
    } median of the rounds' ratios`,
  );
} finally {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => p.status));
}
