/**
 * Benchmarks one training step of the reference VAE (trainer/model.ts REFERENCE_VAE, batch 128,
 * Adam 1e-3, summed-BCE + KL loss) on random [0,1] images: first the fast engine
 * (trainer/engine: wasm + our training kernels), then, in the same process, the stock tfjs wasm
 * backend with a naive composite filter gradient (the only way stock wasm can train convs), and
 * prints the speed ratio. `--profile` adds per-kernel times of one fast step.
 *
 * `--engine ort` compares instead, side by side in the same run (steps alternate, so load
 * changes hit both alike), the fast tfjs wasm engine with the onnxruntime training graph
 * (trainer/engine/ort_train.ts: forward + backward + Adam in one graph), on the same batches
 * and noise (their losses must agree), and prints the ratio.
 *
 *   node --import tsx scripts/bench_train.ts [--steps N] [--warmup N] [--threads T]
 *        [--naive-steps N] [--batch N] [--profile] [--engine tfjs|ort] [--ort-threads T]
 */
import * as os from "node:os";
import * as tf from "@tensorflow/tfjs";
import { initEngine } from "../trainer/engine/tfjs_backend.ts";
import { unregisterWasmTrainingKernels } from "../trainer/engine/kernels.ts";
import { REFERENCE_VAE } from "../trainer/model.ts";
import { registerNaiveFilterGradient } from "./bench_train/naive_filter_gradient.ts";
import {
  makeOrtTrainer,
  makeTrainer,
  summarize,
  timeSteps,
  type Timing,
} from "./bench_train/steps.ts";

interface Flags {
  steps: number;
  warmup: number;
  threads: number | undefined;
  naiveSteps: number;
  batch: number;
  profile: boolean;
  engine: "tfjs" | "ort";
  ortThreads: number | undefined;
  lanes: number;
}

const HELP = `usage: node --import tsx scripts/bench_train.ts [options]
  --steps N        timed steps of the fast engine (default 10)
  --warmup N       untimed steps first (default 3)
  --threads T      wasm threads (default: the engine's default)
  --naive-steps N  timed steps of stock wasm + naive filter gradient (default 2; 0 skips)
  --batch N        batch size (default 128)
  --profile        print per-kernel times of one fast step
  --engine E       tfjs (default): fast wasm engine vs stock wasm; ort: fast wasm engine vs the
                   onnxruntime training graph, alternating steps (naive steps default to 0)
  --ort-threads T  onnxruntime intra-op threads (default: --threads, else 1)
  --lanes N        with --engine ort, also N data-parallel lanes (trainer/engine/ort_lanes.ts,
                   one thread each) beside the one-session graph (default 2; 1 leaves them out)`;

function parseFlags(argv: string[]): Flags {
  const f: Flags = {
    steps: 10,
    warmup: 3,
    threads: undefined,
    naiveSteps: 2,
    batch: 128,
    profile: false,
    engine: "tfjs",
    ortThreads: undefined,
    lanes: 2,
  };
  const ints: Record<string, keyof Flags> = {
    "--lanes": "lanes",
    "--steps": "steps",
    "--warmup": "warmup",
    "--threads": "threads",
    "--naive-steps": "naiveSteps",
    "--batch": "batch",
    "--ort-threads": "ortThreads",
  };
  let naiveGiven = false;
  // `npx deno task bench:train -- --engine ort` hands node the "--" as the first argument.
  if (argv[0] === "--") argv = argv.slice(1);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") {
      console.log(HELP);
      process.exit(0);
    } else if (a === "--profile") f.profile = true;
    else if (a === "--engine") {
      const e = argv[++i];
      if (e !== "tfjs" && e !== "ort") {
        throw new Error(`bench_train: --engine must be tfjs or ort, got "${e}"`);
      }
      f.engine = e;
    } else if (a in ints) {
      if (a === "--naive-steps") naiveGiven = true;
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0) {
        throw new Error(`bench_train: ${a} needs a non-negative integer, got "${argv[i]}"`);
      }
      (f as unknown as Record<string, number>)[ints[a]] = v;
    } else throw new Error(`bench_train: unknown flag "${a}"\n${HELP}`);
  }
  if (f.engine === "ort" && !naiveGiven) f.naiveSteps = 0;
  return f;
}

const EPOCH = 60_000;

function profileOneStep(run: () => number) {
  return tf.profile(() => {
    run();
  }).then((p) => {
    const by = new Map<string, { ms: number; n: number }>();
    for (const kinfo of p.kernels) {
      const e = by.get(kinfo.name) ?? { ms: 0, n: 0 };
      by.set(kinfo.name, { ms: e.ms + (kinfo.kernelTimeMs as number), n: e.n + 1 });
    }
    const rows = [...by].sort((a, b) => b[1].ms - a[1].ms);
    const total = rows.reduce((s, [, e]) => s + e.ms, 0);
    console.log(`per-kernel time of one step (kernels total ${total.toFixed(0)} ms; top 15):`);
    for (const [name, e] of rows.slice(0, 15)) {
      console.log(
        `  ${name.padEnd(24)} ${e.ms.toFixed(1).padStart(7)} ms  ${String(e.n).padStart(4)} calls`,
      );
    }
  });
}

const fmt = (ms: number) => ms.toFixed(0);

/** Alternates one step of each engine per round, so the neighbours' load hits both alike. */
async function compareWithOrt(flags: Flags, fastDescription: string) {
  const threads = flags.ortThreads ?? flags.threads ?? 1;
  const fast = makeTrainer(flags.batch);
  const ort = await makeOrtTrainer(flags.batch, threads);
  const lanes = flags.lanes > 1 ? await makeOrtTrainer(flags.batch, 1, flags.lanes) : null;
  const tf_: Timing = { ms: [], cpuMs: 0, losses: [] },
    or: Timing = { ms: [], cpuMs: 0, losses: [] };
  const ln: Timing = { ms: [], cpuMs: 0, losses: [] };
  const timed = async (into: Timing, fn: () => number | Promise<number>, record: boolean) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const loss = await fn();
    const ms = performance.now() - t0;
    const c = process.cpuUsage(c0);
    into.losses.push(loss);
    if (record) {
      into.ms.push(ms);
      into.cpuMs += (c.user + c.system) / 1000;
    }
  };
  for (let i = 0; i < flags.warmup + flags.steps; i++) {
    await timed(tf_, fast.run, i >= flags.warmup);
    await timed(or, ort.run, i >= flags.warmup);
    if (lanes) await timed(ln, lanes.run, i >= flags.warmup);
  }
  const a = summarize(tf_), b = summarize(or), c = lanes ? summarize(ln) : null;
  const row = (name: string, s: ReturnType<typeof summarize>) =>
    `${name.padEnd(44)} ${fmt(s.median).padStart(6)} ${fmt(s.min).padStart(6)} ${
      fmt(s.cpu).padStart(8)
    } ${((flags.batch * 1000) / s.median).toFixed(0).padStart(9)} ${
      ((s.median * EPOCH) / flags.batch / 1000).toFixed(0).padStart(10)
    }`;
  console.log(
    `${flags.steps} alternating steps after ${flags.warmup} warm-up, batch ${flags.batch}:`,
  );
  console.log(
    `${"engine".padEnd(44)} ${"median".padStart(6)} ${"min".padStart(6)} ${"CPU ms".padStart(8)} ${
      "images/s".padStart(9)
    } ${"s/epoch".padStart(10)}`,
  );
  console.log(row(fastDescription.slice(0, 44), a));
  console.log(row(`onnxruntime graph, ${threads} thread${threads > 1 ? "s" : ""}`, b));
  if (c) console.log(row(`onnxruntime, ${flags.lanes} lanes x 1 thread`, c));
  console.log(
    `(ms per step; s/epoch = median x 60,000 / batch; CPU = process CPU time per step, all threads)`,
  );
  console.log(
    `speed-up of onnxruntime: ${(a.median / b.median).toFixed(2)}x wall (median), ${
      (a.min / b.min).toFixed(2)
    }x (min), ${(a.cpu / b.cpu).toFixed(2)}x CPU`,
  );
  console.log(`tfjs losses: ${tf_.losses.map((l) => l.toFixed(2)).join(" ")}`);
  console.log(
    `ort  losses: ${
      or.losses.map((l) => l.toFixed(2)).join(" ")
    } (same batches and noise: must agree)`,
  );
  if (c && lanes) {
    const worst = Math.max(
      ...ln.losses.map((l, i) => Math.abs(l - or.losses[i]) / Math.abs(or.losses[i])),
    );
    console.log(
      `lanes losses: ${
        ln.losses.map((l) => l.toFixed(2)).join(" ")
      } (largest relative difference from one session ${worst.toExponential(1)})`,
    );
    console.log(
      `${flags.lanes} lanes vs one session: ${(b.median / c.median).toFixed(2)}x wall (median), ${
        (b.min / c.min).toFixed(2)
      }x (min); projected epoch ${
        ((c.median * EPOCH) / flags.batch / 1000).toFixed(0)
      } s (median), ${((c.min * EPOCH) / flags.batch / 1000).toFixed(0)} s (min); target <= 30 s`,
    );
    await lanes.dispose();
  }
  fast.dispose();
  await ort.dispose();
}

async function main() {
  const flags = parseFlags(process.argv.slice(2));
  const info = await initEngine({ backend: "wasm", threads: flags.threads });
  console.log(`reference VAE ${JSON.stringify(REFERENCE_VAE)}, batch ${flags.batch}, Adam 1e-3`);
  if (flags.engine === "ort") {
    console.log(
      `load average ${
        os.loadavg().map((l) => l.toFixed(1)).join(" ")
      } on ${os.cpus().length} cores (others' work inflates wall times)`,
    );
    await compareWithOrt(flags, info.description);
    return;
  }

  const fast = makeTrainer(flags.batch);
  const f = timeSteps(fast.run, flags.warmup, flags.steps);
  const perEpoch = (f.median * EPOCH) / flags.batch / 1000;
  const loads = os.loadavg().map((l) => l.toFixed(1)).join(" ");
  console.log(
    `fast engine (${info.description}): ${flags.steps} steps after ${flags.warmup} warm-up: ` +
      `mean ${fmt(f.mean)} ms/step, median ${fmt(f.median)}, min ${fmt(f.min)}, CPU ${
        fmt(f.cpuMs)
      } ms/step; ` +
      `${((flags.batch * 1000) / f.median).toFixed(0)} images/s; projected ${
        perEpoch.toFixed(0)
      } s per 60k epoch (median)`,
  );
  console.log(
    `load average ${loads} on ${os.cpus().length} cores (others' work inflates wall times)`,
  );
  console.log(`fast engine losses: ${f.losses.map((l) => l.toFixed(2)).join(" ")}`);
  if (flags.profile) await profileOneStep(fast.run);
  fast.dispose();

  if (flags.naiveSteps > 0) {
    unregisterWasmTrainingKernels();
    registerNaiveFilterGradient();
    const naive = makeTrainer(flags.batch);
    const n = timeSteps(naive.run, 0, flags.naiveSteps);
    console.log(
      `stock wasm + naive filter gradient: ${flags.naiveSteps} steps (no warm-up): mean ${
        fmt(n.mean)
      } ms/step, CPU ${fmt(n.cpuMs)} ms/step, ` +
        `min ${fmt(n.min)}; projected ${
          ((n.min * EPOCH) / flags.batch / 1000).toFixed(0)
        } s per 60k epoch (min)`,
    );
    console.log(
      `naive losses: ${
        n.losses.map((l) => l.toFixed(2)).join(" ")
      } (first must match the fast engine's first)`,
    );
    console.log(
      `speed-up of the fast engine: ${(n.min / f.median).toFixed(1)}x (naive min / fast median)`,
    );
    naive.dispose();
  }
}

await main();
