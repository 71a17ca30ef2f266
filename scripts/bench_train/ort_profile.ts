/**
 * `bench_train --engine ort --profile`: onnxruntime's own per-node profile (SessionOptions
 * enableProfiling) of the one-session training step of the reference VAE, summed per op type
 * and per role in the step (forward, input gradient, filter gradient, Adam, ...). The profile
 * times kernels by the wall clock, which the neighbours' load inflates, so each row is also
 * given as CPU ms per step: its share of the kernel time times the step's measured CPU time.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { makeOrtTrainer } from "./steps.ts";

interface ProfileEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string };
}

/** Where a node of the training graph belongs (by the names ort_graph/ gives its nodes). */
export function roleOf(node: string, op: string): string {
  const n = node.replace(/^fused /, "");
  if (n.startsWith("bwd/dw_") || n.startsWith("bwd/bigT") || n.startsWith("bwd/smallT")) {
    return "filter gradients (dilated Conv, its transposes)";
  }
  if (n.startsWith("bwd/conv_dx") || n.startsWith("bwd/convT_dx")) {
    return "input gradients of the convolutions";
  }
  if (n.startsWith("bwd/gemm_d")) return n.includes("_db") ? "bias gradients" : "dense backward";
  if (n.startsWith("bwd/relu")) return "relu gradients (Greater, Cast, Mul)";
  if (n.startsWith("bwd/conv_db")) return "bias gradients";
  if (n.startsWith("adam_") || n.startsWith("grad_flat") || n === "grads") {
    return "Adam in the graph (flat gradient, update)";
  }
  if (!n.startsWith("bwd/") && /Conv/.test(op)) return "forward convolutions";
  if (!n.startsWith("bwd/") && /Gemm/.test(op)) return "forward dense layers";
  if (!n.startsWith("bwd/") && /\/act$|Relu/.test(n)) return "forward relu";
  return "rest (loss, reshapes, slices of params)";
}

type Sums = Map<string, { us: number; nodes: number }>;

function add(m: Sums, key: string, us: number) {
  const e = m.get(key) ?? { us: 0, nodes: 0 };
  e.us += us;
  e.nodes++;
  m.set(key, e);
}

/** Kernel time per op type and per role, over the runs after the first `skip`. */
export function summarizeProfile(events: ProfileEvent[], skip: number) {
  const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run")
    .sort((a, b) => a.ts - b.ts);
  if (runs.length <= skip) throw new Error(`profile: ${runs.length} runs, expected > ${skip}`);
  const from = runs[skip].ts, counted = runs.length - skip;
  const byOp: Sums = new Map(), byRole: Sums = new Map();
  for (const e of events) {
    if (e.cat !== "Node" || !e.name.endsWith("_kernel_time") || e.ts < from) continue;
    const op = e.args?.op_name ?? "?";
    add(byOp, op, e.dur);
    add(byRole, roleOf(e.name.slice(0, -"_kernel_time".length), op), e.dur);
  }
  return { byOp, byRole, runs: counted };
}

function printTable(title: string, m: Sums, runs: number, cpuMs: number) {
  const total = [...m.values()].reduce((a, e) => a + e.us, 0);
  console.log(`\n${title.padEnd(50)} ${"nodes".padStart(5)} ${"CPU ms".padStart(7)} share`);
  for (const [k, e] of [...m].sort((a, b) => b[1].us - a[1].us)) {
    const share = e.us / total;
    console.log(
      `${k.slice(0, 50).padEnd(50)} ${String(e.nodes / runs).padStart(5)} ${
        (share * cpuMs).toFixed(1).padStart(7)
      } ${(100 * share).toFixed(1).padStart(5)}%`,
    );
  }
}

/** Profiles `steps` one-session steps after `warmup` and prints both tables. */
export async function profileOrtStep(batch: number, steps: number, warmup: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ort-profile-"));
  const t = await makeOrtTrainer(batch, 1, 1, { profileFilePrefix: path.join(dir, "step") });
  try {
    for (let i = 0; i < warmup; i++) await t.run();
    const c0 = process.cpuUsage();
    for (let i = 0; i < steps; i++) await t.run();
    const c = process.cpuUsage(c0);
    const cpuMs = (c.user + c.system) / 1000 / steps;
    t.endProfiling();
    const file = fs.readdirSync(dir).find((f) => f.endsWith(".json"));
    if (!file) throw new Error(`profile: onnxruntime wrote no profile into ${dir}`);
    const events = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as ProfileEvent[];
    const s = summarizeProfile(events, warmup);
    const kernelMs = [...s.byOp.values()].reduce((a, e) => a + e.us, 0) / 1000 / s.runs;
    console.log(
      `onnxruntime profile of ${s.runs} steps (batch ${batch}, 1 thread): ${
        cpuMs.toFixed(0)
      } CPU ms per step, kernels ${kernelMs.toFixed(0)} wall ms per step`,
    );
    printTable("op type", s.byOp, s.runs, cpuMs);
    printTable("role in the step", s.byRole, s.runs, cpuMs);
  } finally {
    await t.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
