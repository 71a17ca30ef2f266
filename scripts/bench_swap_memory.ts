/**
 * Memory across hot swaps: RSS after the 1st and after the 50th swap, per backend, each in a
 * fresh Deno process (so the runtimes do not share a heap). The service keeps at most two
 * models loaded (the old one retires before the next reload starts), so RSS should stay flat:
 * the check is RSS(50) - RSS(1) <= 50 MB. "wasm-inprocess" runs onnxruntime-web in the main
 * isolate without per-model workers, to show why the workers exist.
 *
 *   npx deno run -A scripts/bench_swap_memory.ts [--swaps 50] [--backends wasm,native,wasm-inprocess]
 */
import { runFlags } from "./_cli.ts";
import { loadBackend, loadModel, ModelSlot, WorkerBackend } from "../serve/inference/mod.ts";
import { DirSource } from "../serve/registry_source.ts";
import { Reloader } from "../serve/reload.ts";
import { makeRegistry, MODEL, VERSIONS } from "../testkit/fixtures.ts";

const LIMIT_MB = 50;
const FLAGS = {
  swaps: { type: "int", default: 50, help: "hot swaps per backend" },
  backends: {
    type: "string",
    default: "wasm,native,wasm-inprocess",
    help: "comma-separated: wasm (per-model workers), native, wasm-inprocess (no workers)",
  },
  child: { type: "string", help: "internal: the backend this child process measures" },
} as const;
const values = runFlags(
  FLAGS,
  "Usage: npx deno run -A scripts/bench_swap_memory.ts [--swaps 50] [--backends wasm,native,wasm-inprocess]",
);
const swaps = values.swaps as number;
const mb = (b: number) => b / 1024 / 1024;

async function child(kind: string): Promise<void> {
  const name = kind.startsWith("wasm") ? "wasm" : "native";
  const { backend } = await loadBackend(name, { threads: 1, isolate: kind === "wasm" });
  const reg = await makeRegistry();
  const slot = new ModelSlot();
  const reloader = new Reloader({
    slot,
    source: new DirSource(reg.root, MODEL),
    log: () => {},
    load: (dir) => loadModel(dir, { backend, maxBatch: 64 }),
  });
  const rss = () => {
    (globalThis as { gc?: () => void }).gc?.();
    return Deno.memoryUsage().rss;
  };
  const image = new Float32Array(16 * 784).fill(0.5);
  let first = 0;
  const series: number[] = [];
  const t0 = performance.now();
  for (let i = 1; i <= swaps; i++) {
    const o = await reloader.request({
      kind: "activate",
      version: VERSIONS[i % VERSIONS.length],
      reason: "bench",
    });
    if (o.status !== "swapped") throw new Error(`swap ${i} did not happen: ${JSON.stringify(o)}`);
    await slot.use((m) => m.encode(image, 16)); // some real work on every version
    if (backend instanceof WorkerBackend) await backend.standbyReady(); // count the standby in
    if (i === 1) first = rss();
    if (i % 10 === 0) series.push(mb(rss()));
  }
  const last = rss();
  await slot.close();
  if (backend instanceof WorkerBackend) backend.close();
  await reg.cleanup();
  console.log(JSON.stringify({
    kind,
    swaps,
    rssAfterFirstMB: mb(first),
    rssAfterLastMB: mb(last),
    growthMB: mb(last - first),
    every10MB: series,
    seconds: (performance.now() - t0) / 1000,
  }));
}

if (values.child) {
  await child(values.child as string);
} else {
  let fail = false;
  for (const kind of (values.backends as string).split(",")) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        new URL(import.meta.url).pathname,
        "--child",
        kind,
        "--swaps",
        String(swaps),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const line = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
    if (out.code !== 0 || !line.startsWith("{")) {
      console.log(`${kind}: failed (exit ${out.code})`);
      fail = true;
      continue;
    }
    const r = JSON.parse(line);
    const ok = r.growthMB <= LIMIT_MB;
    if (!ok && kind !== "wasm-inprocess") fail = true;
    console.log(
      `${kind.padEnd(15)} RSS after swap 1: ${
        r.rssAfterFirstMB.toFixed(0)
      } MB, after swap ${r.swaps}: ${r.rssAfterLastMB.toFixed(0)} MB, growth ${
        r.growthMB.toFixed(1)
      } MB (${ok ? "within" : "OVER"} ${LIMIT_MB} MB)` +
        `; every 10 swaps: ${r.every10MB.map((x: number) => x.toFixed(0)).join(" ")} MB; ${
          r.seconds.toFixed(1)
        } s`,
    );
  }
  Deno.exit(fail ? 1 : 0);
}
