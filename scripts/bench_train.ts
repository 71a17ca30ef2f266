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
import { profileOrtStep } from "./bench_train/ort_profile.ts";
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
  --profile        print per-kernel times of one fast step; with --engine ort instead
                   onnxruntime's per-node profile of --steps one-session steps, per op type
                   and per role (scripts/bench_train/ort_profile.ts), and no comparison
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

interface Row {
  name: string;
  run: () => number | Promise<number>;
  t: Timing;
}

/**
 * The rows of `--engine ort`: tfjs; one session on 1 and 2 intra-op threads; lanes before
 * (Adam on one thread) and after (Adam split over the lanes). Row 1 is the ratios' baseline.
 */
async function ortRows(flags: Flags, fastDescription: string) {
  const threads = flags.ortThreads ?? flags.threads ?? 1;
  const fast = makeTrainer(flags.batch);
  const rows: Row[] = [{ name: fastDescription, run: fast.run, t: newTiming() }];
  const made: { dispose: () => Promise<void> }[] = [];
  const add = async (name: string, ...a: Parameters<typeof makeOrtTrainer>) => {
    const t = await makeOrtTrainer(...a);
    made.push(t);
    rows.push({ name, run: t.run, t: newTiming() });
  };
  await add(`one session, ${threads} thread${threads > 1 ? "s" : ""}`, flags.batch, threads);
  if (threads === 1 && flags.lanes > 1) {
    await add("one session, 2 intra-op threads", flags.batch, 2);
  }
  if (flags.lanes > 1) {
    const n = flags.lanes;
    await add(`${n} lanes, Adam on one thread (before)`, flags.batch, 1, n, { splitAdam: false });
    await add(`${n} lanes, Adam split over the lanes (after)`, flags.batch, 1, n);
  }
  const dispose = async () => {
    fast.dispose();
    for (const t of made) await t.dispose();
  };
  return { rows, dispose };
}

const newTiming = (): Timing => ({ ms: [], cpuMs: 0, losses: [] });

/** Alternates one step of each engine per round, so the neighbours' load hits all alike. */
async function compareWithOrt(flags: Flags, fastDescription: string) {
  const { rows, dispose } = await ortRows(flags, fastDescription);
  for (let i = 0; i < flags.warmup + flags.steps; i++) {
    for (const r of rows) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const loss = await r.run();
      const ms = performance.now() - t0;
      const c = process.cpuUsage(c0);
      r.t.losses.push(loss);
      if (i >= flags.warmup) {
        r.t.ms.push(ms);
        r.t.cpuMs += (c.user + c.system) / 1000;
      }
    }
  }
  const perEpoch = (ms: number) => ((ms * EPOCH) / flags.batch / 1000).toFixed(0).padStart(9);
  console.log(
    `${flags.steps} alternating steps after ${flags.warmup} warm-up, batch ${flags.batch}:`,
  );
  const head = ["median", "min", "CPU ms", "images/s", "s/epoch", "CPU s/ep"];
  console.log(`${"engine".padEnd(52)} ${head.map((h) => h.padStart(9)).join(" ")}`);
  const sums = rows.map((r) => summarize(r.t));
  rows.forEach((r, k) => {
    const s = sums[k];
    const cells = [
      fmt(s.median),
      fmt(s.min),
      fmt(s.cpu),
      ((flags.batch * 1000) / s.median).toFixed(0),
    ]
      .map((c) => c.padStart(9));
    console.log(
      `${r.name.slice(0, 52).padEnd(52)} ${cells.join(" ")} ${perEpoch(s.median)} ${
        perEpoch(s.cpu)
      }`,
    );
  });
  console.log(
    "(ms per step; s/epoch = median x 60,000 / batch; CPU = process CPU time per step, all " +
      "threads; CPU s/ep = CPU ms x 60,000 / batch: core-seconds an epoch costs)",
  );
  const base = sums[1], ref = rows[1].t.losses;
  for (const [k, r] of rows.entries()) {
    if (k === 1) continue;
    const worst = Math.max(...r.t.losses.map((l, i) => Math.abs(l - ref[i]) / Math.abs(ref[i])));
    console.log(
      `${r.name}: ${(base.median / sums[k].median).toFixed(2)}x wall (median), ${
        (base.cpu / sums[k].cpu).toFixed(2)
      }x CPU against one session; largest relative loss difference ${worst.toExponential(1)}`,
    );
  }
  console.log(`one-session losses: ${ref.map((l) => l.toFixed(2)).join(" ")}`);
  await dispose();
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
    if (flags.profile) await profileOrtStep(flags.batch, flags.steps, flags.warmup);
    else await compareWithOrt(flags, info.description);
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
