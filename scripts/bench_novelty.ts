/**
 * The added cost of novelty at serve time (issue #15): on the native backend and a batch of 64
 * Fashion-MNIST test images, the per-image time of the serving graph's run (what /v1/classify
 * computes today) beside the per-image time of the novelty fields (features, score,
 * percentile), and the whole /v1/classify request (app.request, 64 images as octet-stream)
 * with and without the bundle's calibration (alternating request by request). Interleaved
 * rounds; medians.
 *
 *   deno run -A scripts/bench_novelty.ts [--bundle <dir>] [--rounds 7] [--iters 200]
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { FlagError, type FlagSpecs, parseCommandFlags } from "../common/flags.ts";
import { PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { noveltyJudge } from "../serve/novelty.ts";
import { copyBundle } from "../testkit/novelty_helpers.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";
import { readTestImages } from "../testkit/test_images.ts";

const FLAGS = {
  bundle: {
    type: "string",
    help: "bundle directory (default: the registry's CURRENT fashion-vae)",
  },
  rounds: { type: "int", default: 7, help: "interleaved rounds" },
  iters: { type: "int", default: 200, help: "batches per measurement" },
  batch: { type: "int", default: 64, help: "images per batch" },
} satisfies FlagSpecs;

const f = parseCommandFlags(
  Deno.args,
  FLAGS,
  "Usage: deno run -A scripts/bench_novelty.ts [flags]",
);
if (!f) Deno.exit(0);
const dir = (f.bundle as string | undefined) ??
  join("models/fashion-vae", readFileSync("models/fashion-vae/CURRENT", "utf8").trim());
const B = f.batch as number, iters = f.iters as number;
const test = readTestImages(B);
if (!test) throw new FlagError("Fashion-MNIST test images are missing");

// The same bundle without its calibration, for the request with novelty unavailable.
const plainDir = await copyBundle(dir);
const mf = JSON.parse(readFileSync(join(plainDir, "manifest.json"), "utf8"));
if (!mf.novelty) throw new FlagError(`${dir} carries no novelty calibration`);
delete mf.novelty;
Deno.writeTextFileSync(join(plainDir, "manifest.json"), JSON.stringify(mf));

const served = await serveBundle("native", dir, { threads: 1 });
const plain = await serveBundle("native", plainDir, { threads: 1 });
const judge = noveltyJudge(served.model)!;
const images = normalizePixels(test.images.subarray(0, B * PIXELS));
const out = await served.model.encode(images, B);

async function perImageUs(fn: () => Promise<unknown> | unknown): Promise<number> {
  for (let i = 0; i < 10; i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) await fn();
  return ((performance.now() - t0) * 1000) / (iters * B);
}

const request = (s: typeof served) => async () => {
  const res = await s.app.request("/v1/classify", {
    method: "POST",
    body: test.images.slice(0, B * PIXELS),
    headers: { "Content-Type": "application/octet-stream" },
  });
  await res.arrayBuffer();
};

/**
 * The two requests alternate one by one, in swapped order every other time, so load from
 * other processes and cache effects of switching sessions hit both alike.
 */
async function pairedRequestsUs(): Promise<[number, number]> {
  const a = request(plain), b = request(served);
  for (let i = 0; i < 10; i++) await a(), await b();
  const t = [0, 0];
  const timed = async (k: number, fn: () => Promise<void>) => {
    const t0 = performance.now();
    await fn();
    t[k] += performance.now() - t0;
  };
  for (let i = 0; i < iters; i++) {
    if (i % 2) await timed(0, a), await timed(1, b);
    else await timed(1, b), await timed(0, a);
  }
  return [(t[0] * 1000) / (iters * B), (t[1] * 1000) / (iters * B)];
}

const rows: Record<string, number[]> = { graph: [], novelty: [], reqPlain: [], reqNovelty: [] };
for (let r = 0; r < (f.rounds as number); r++) {
  rows.graph.push(await perImageUs(() => served.model.encode(images, B)));
  rows.novelty.push(await perImageUs(() => judge.judge(out, images)));
  const [p, n] = await pairedRequestsUs();
  rows.reqPlain.push(p);
  rows.reqNovelty.push(n);
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const range = (a: number[]) => `${Math.min(...a).toFixed(2)}-${Math.max(...a).toFixed(2)}`;
const signed = (v: number) => `${v >= 0 ? "+" : ""}${v.toFixed(1)}`;
const g = med(rows.graph),
  n = med(rows.novelty),
  rp = med(rows.reqPlain),
  rn = med(rows.reqNovelty);
console.log(
  `bundle ${served.model.name}@${served.model.version}, native, batch ${B}, 1 thread, ${f.rounds} rounds x ${iters} batches (median, range) per image:`,
);
console.log(
  `  serving graph run (today's /v1/classify compute)  ${g.toFixed(2)} us  (${range(rows.graph)})`,
);
console.log(
  `  novelty fields (features + score + percentile)      ${n.toFixed(2)} us  (${
    range(rows.novelty)
  })  = ${(100 * n / g).toFixed(1)}% of the graph run`,
);
console.log(
  `  /v1/classify request, no calibration                ${rp.toFixed(2)} us  (${
    range(rows.reqPlain)
  })`,
);
console.log(
  `  /v1/classify request, with novelty                  ${rn.toFixed(2)} us  (${
    range(rows.reqNovelty)
  })  = ${signed(100 * (rn - rp) / rp)}%`,
);
await served.model.close();
await plain.model.close();
await Deno.remove(plainDir, { recursive: true });
