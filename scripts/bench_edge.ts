/**
 * The edge profile's two figures on the committed default model, each in `deno serve
 * serve/edge.ts` started as tests/edge_process.ts starts it (no Worker, read-only code,
 * network and env only), following an HTTP registry on loopback:
 *  - cold start: process start to the first classify answered (wall and the process's own CPU
 *    time), --starts times, median printed;
 *  - memory across swaps, alternating CURRENT between the default bundle and a copy of it under
 *    another version id (same sizes, so every swap loads a whole model beside the serving one):
 *    after swaps 1, 10, 25, 50 (and every 50th), RSS and its split by mapping from /proc, and the
 *    wasm heap, V8 heap and external memory the edge logs; the peak RSS over all swaps. --gc
 *    starts that edge with --expose-gc, so it collects before each line (what is held, not
 *    what is garbage).
 */
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveActive } from "../registry/registry.ts";
import { activateVersion } from "../registry/registry_write.ts";
import { cpuSeconds, serveRegistry, startEdge } from "../testkit/edge_process.ts";
import { runFlags } from "./_cli.ts";
import { memoryRow, table } from "./_edge_memory.ts";

const flags = runFlags(
  {
    registry: { type: "string", default: "models", help: "registry whose CURRENT bundle is used" },
    starts: { type: "int", default: 5, help: "cold starts to measure" },
    swaps: { type: "int", default: 50, help: "swaps for the memory figure" },
    gc: {
      type: "boolean",
      default: false,
      help: "start the swap edge with --expose-gc: it collects garbage before each memory line",
    },
  } as const,
  "Usage: npx deno run -A scripts/bench_edge.ts [flags]",
);

const active = await resolveActive(flags.registry as string);
const root = await mkdtemp(join(tmpdir(), "bench-edge-"));
const other = `${active.version}-b`;
await cp(active.dir, join(root, active.name, active.version), { recursive: true });
await cp(active.dir, join(root, active.name, other), { recursive: true });
const mfPath = join(root, active.name, other, "manifest.json");
await writeFile(
  mfPath,
  JSON.stringify({ ...JSON.parse(await readFile(mfPath, "utf8")), version: other }),
);
await activateVersion(root, active.name, active.version, "publish");
const registry = serveRegistry(root);
const env = {
  LATENT_EDGE_REGISTRY: `http://127.0.0.1:${registry.addr.port}/`,
  LATENT_EDGE_MODEL: active.name,
  LATENT_EDGE_POLL_MS: "50",
};
const px = new Uint8Array(784).fill(0);
const infer = JSON.stringify({
  inputs: [{ name: "image", datatype: "UINT8", shape: [1, 784], data: Array.from(px) }],
});

async function version(url: string): Promise<string | null> {
  const res = await fetch(`${url}/v2/models/${active.name}/infer`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: infer,
    signal: AbortSignal.timeout(10_000),
  }).catch(() => null);
  if (!res) return null;
  const body = await res.json().catch(() => null);
  return res.status === 200 ? body.model_version : null;
}

async function until(url: string, want: string | null): Promise<void> {
  const end = performance.now() + 60_000;
  for (;;) {
    const v = await version(url);
    if (want === null ? v !== null : v === want) return;
    if (performance.now() > end) throw new Error(`edge never answered with ${want ?? "a model"}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
try {
  const wall: number[] = [], cpu: number[] = [];
  for (let i = 0; i < (flags.starts as number); i++) {
    const edge = await startEdge(env);
    try {
      await until(edge.url, null);
      wall.push(performance.now() - edge.started);
      cpu.push(cpuSeconds(edge.pid) * 1000);
    } finally {
      await edge.stop();
    }
  }
  console.log(
    `${active.name}@${active.version}, deno serve serve/edge.ts, HTTP registry on loopback, ${navigator.hardwareConcurrency} CPUs (shared), load average ${
      Deno.loadavg()[0].toFixed(1)
    }`,
  );
  if (wall.length) {
    console.log(
      `cold start (process start to first classify answered), ${wall.length} starts: median ${
        median(wall).toFixed(0)
      } ms wall (${wall.map((x) => x.toFixed(0)).join(", ")}), median ${
        median(cpu).toFixed(0)
      } ms CPU of the edge process`,
    );
  }

  const edge = await startEdge(env, { v8Flags: flags.gc ? ["--expose-gc"] : [] });
  try {
    await until(edge.url, active.version);
    const rows = [await memoryRow("start", edge, active.version)];
    let peak = 0;
    for (let i = 1; i <= (flags.swaps as number); i++) {
      const v = i % 2 === 1 ? other : active.version;
      const after = edge.logs.length;
      await activateVersion(root, active.name, v, "publish");
      await until(edge.url, v);
      const row = await memoryRow(`swap ${i}`, edge, v, after);
      peak = Math.max(peak, row.rss);
      if ([1, 10, 25, 50].includes(i) || i % 50 === 0) rows.push(row);
    }
    console.log(
      `memory after each swap${
        flags.gc ? " (the edge ran gc() before measuring: --expose-gc)" : ""
      }, MiB (rss from /proc; heap, external, wasm as the edge logged them; smaps: brk = glibc malloc main heap, anon = other anonymous: wasm heap, V8 pages, wasm code, malloc thread arenas):`,
    );
    console.log(table(rows));
    const rss = (label: string) => rows.find((r) => r.label === label)?.rss;
    const [r1, r10, last] = [rss("swap 1")!, rss("swap 10"), rows.at(-1)!.rss];
    console.log(
      `RSS after ${flags.swaps} swaps - after the first: ${(last - r1).toFixed(1)} MiB${
        r10 !== undefined ? `; - after swap 10: ${(last - r10).toFixed(1)} MiB` : ""
      }; peak over swaps 1..${flags.swaps} - after the first: ${(peak - r1).toFixed(1)} MiB`,
    );
  } finally {
    await edge.stop();
  }
} finally {
  await registry.shutdown();
  await rm(root, { recursive: true, force: true });
}
