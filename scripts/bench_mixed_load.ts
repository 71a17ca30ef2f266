/**
 * Small requests under large ones (issue 21, defect 10): a real server per setting, `--batch-
 * clients` clients posting 256-image batches back to back while one client posts single images
 * one after the other; prints the single image's latency (p50/p99/max) and the batch clients'
 * images/s, for each --chunk-rows value (0 is the behaviour before chunking: whole requests in
 * arrival order). Loopback only, bounded by --seconds per setting.
 *
 *   npx deno run -A scripts/bench_mixed_load.ts [--backend native] [--chunk-rows 0,32] [--seconds 10]
 */
import { parseCommandFlags } from "../common/flags.ts";
import { startServer } from "../testkit/server_process.ts";
import { runScript } from "./_cli.ts";

const FLAGS = {
  bundle: { type: "string", help: "bundle dir (default: the registry's active model)" },
  backend: { type: "string", default: "native", help: "server backend" },
  "chunk-rows": {
    type: "string",
    default: "0,32",
    help: "comma-separated --chunk-rows to compare",
  },
  "batch-clients": { type: "int", default: 4, help: "clients posting 256-image batches" },
  seconds: { type: "int", default: 10, help: "measured seconds per setting" },
} as const;
const USAGE = "Usage: npx deno run -A scripts/bench_mixed_load.ts [flags]";

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function post(url: string, body: Uint8Array): Promise<number> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/classify`, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: body as Uint8Array<ArrayBuffer>,
  });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`classify answered ${r.status}`);
  return performance.now() - t0;
}

async function measure(url: string, clients: number, seconds: number) {
  const one = Uint8Array.from({ length: 784 }, (_, i) => (i * 13) % 256);
  const batch = Uint8Array.from({ length: 784 * 256 }, (_, i) => (i * 7) % 256);
  for (let i = 0; i < 5; i++) await post(url, batch), await post(url, one); // warm-up
  const idle: number[] = [];
  for (let i = 0; i < 50; i++) idle.push(await post(url, one));
  idle.sort((a, b) => a - b);
  const end = performance.now() + seconds * 1000;
  let batches = 0;
  const loops = Array.from({ length: clients }, async () => {
    while (performance.now() < end) await post(url, batch), batches++;
  });
  const lat: number[] = [];
  await new Promise((r) => setTimeout(r, 200)); // the batches are flowing
  while (performance.now() < end) lat.push(await post(url, one));
  await Promise.all(loops);
  lat.sort((a, b) => a - b);
  return { lat, idle, imagesPerS: (batches * 256) / seconds };
}

async function main(args: string[]): Promise<number> {
  const f = parseCommandFlags(args, FLAGS, USAGE);
  if (!f) return 0;
  const target = f.bundle ? ["--bundle", f.bundle as string] : [];
  console.log(
    `backend ${f.backend}; ${
      f["batch-clients"]
    } clients x 256-image batches + 1 client x 1 image; ${f.seconds} s each`,
  );
  console.log(
    "chunk-rows | alone p50 (ms) | under load p50 / p90 / p99 / max (ms) | n | batch images/s",
  );
  for (const chunk of String(f["chunk-rows"]).split(",").map(Number)) {
    const server = await startServer(
      [...target, "--backend", f.backend as string, "--chunk-rows", String(chunk), "--no-watch"],
      { startTimeoutMs: 60_000 },
    );
    try {
      const { lat, idle, imagesPerS } = await measure(
        server.url,
        f["batch-clients"] as number,
        f.seconds as number,
      );
      console.log(
        `${String(chunk).padStart(10)} | ${pct(idle, 0.5).toFixed(1)} | ${
          [0.5, 0.9, 0.99].map((p) => pct(lat, p).toFixed(1)).join(" / ")
        } / ${lat[lat.length - 1].toFixed(1)} | ${lat.length} | ${Math.round(imagesPerS)}`,
      );
    } finally {
      await server.stop();
    }
  }
  return 0;
}

if (import.meta.main) await runScript("bench_mixed_load", USAGE, FLAGS, main);
