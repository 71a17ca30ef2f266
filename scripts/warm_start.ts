/**
 * The warm-start measurement (docs/retrain.md): a parent trained on a stratified subset of
 * Fashion-MNIST, published to a scratch registry, then warm-started on all 60,000 images for a
 * few epochs; prints both runs' onnxruntime test accuracy and training time beside the
 * from-scratch default bundle's, and the ratios. Steps already done in --work are reused (the
 * parent takes the longest), so the warm start can be rerun with other epochs or schedules.
 *
 *   node --import tsx scripts/warm_start.ts [--work runs/warm-start] [--parent-count 30000]
 *        [--epochs 3] [--lr 0.001] [--lr-schedule cosine] [--reference models/fashion-vae]
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { FlagError, type FlagSpecs, formatHelp, parseFlags } from "../common/flags.ts";
import { type Manifest, readManifest } from "../bundle/mod.ts";
import { resolveActive } from "../registry/registry.ts";

const FLAGS = {
  work: { type: "string", default: "runs/warm-start", help: "directory of the runs" },
  "parent-count": { type: "int", default: 30000, help: "training images of the parent" },
  epochs: { type: "int", default: 3, help: "epochs of the warm start" },
  lr: { type: "number", default: 1e-3, help: "learning rate of the warm start" },
  "lr-schedule": {
    type: "string",
    default: "cosine",
    choices: ["constant", "cosine"],
    help: "schedule of the warm start",
  },
  reference: {
    type: "string",
    default: "models/fashion-vae",
    help: "from-scratch reference: a bundle dir or a registry model dir (its CURRENT)",
  },
} satisfies FlagSpecs;

const CLI = resolve("trainer/cli.ts");

/** Runs the trainer's CLI with its output shown; a failing step stops the script. */
function trainer(args: string[]): void {
  process.stderr.write(`$ deno task train -- ${args.join(" ")}\n`);
  const r = spawnSync(process.execPath, ["--import", "tsx", CLI, ...args], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`trainer ${args[0]} exited ${r.status}`);
}

async function reference(path: string): Promise<Manifest> {
  if (existsSync(join(path, "manifest.json"))) return readManifest(path);
  return readManifest((await resolveActive(join(path, ".."), path.split("/").pop())).dir);
}

/** Training images stepped through per second over the run's epochs (history.json). */
function imagesPerSecond(runDir: string): number {
  const h = JSON.parse(readFileSync(join(runDir, "history.json"), "utf8")).history as {
    seconds: number;
    imagesPerSecond: number;
  }[];
  const images = h.reduce((a, e) => a + e.seconds * e.imagesPerSecond, 0);
  return images / h.reduce((a, e) => a + e.seconds, 0);
}

/** The parent run, its bundle with the weights checkpoint, published to the scratch registry. */
async function parent(work: string, count: number): Promise<{ run: string; registry: string }> {
  const run = join(work, "parent");
  if (!existsSync(join(run, "bundle", "manifest.json"))) {
    trainer(["train", "--train-count", String(count), "--out", run, "--no-progress"]);
  }
  const registry = join(work, "registry");
  if (!existsSync(registry)) {
    let bundle = join(run, "bundle");
    // A bundle written before bundles carried their weights: export one that does.
    if (!(await readManifest(bundle)).files.some((f) => f.role === "checkpoint")) {
      bundle = join(work, "parent-bundle");
      trainer(["export", "--checkpoint", join(run, "checkpoint.bin"), "--out", bundle]);
    }
    trainer(["publish", bundle, "--registry", registry]);
  }
  return { run, registry };
}

async function main(): Promise<void> {
  const { flags: f } = parseFlags(process.argv.slice(2), FLAGS, process.env);
  if (f.help) {
    console.log(formatHelp("node --import tsx scripts/warm_start.ts [flags]", FLAGS));
    return;
  }
  const work = resolve(f.work as string);
  const p = await parent(work, f["parent-count"] as number);
  const tag = `e${f.epochs}-${f["lr-schedule"]}-lr${f.lr}`;
  const warmRun = join(work, `warm-${tag}`);
  if (!existsSync(join(warmRun, "bundle", "manifest.json"))) {
    trainer([
      "train",
      "--init-from",
      p.registry,
      "--epochs",
      String(f.epochs),
      "--lr",
      String(f.lr),
      "--lr-schedule",
      f["lr-schedule"] as string,
      "--out",
      warmRun,
      "--no-progress",
    ]);
  }
  const ref = await reference(f.reference as string);
  const pm = await readManifest(join(p.run, "bundle"));
  const wm = await readManifest(join(warmRun, "bundle"));
  report(ref, pm, wm, imagesPerSecond(warmRun));
}

function report(ref: Manifest, parentM: Manifest, warm: Manifest, warmRate: number): void {
  const acc = (m: Manifest) => m.metrics.testAccuracy * 100;
  const secs = (m: Manifest) => m.training.seconds as number;
  const images = (m: Manifest) =>
    (m.training.epochs as number) * ((m.data.trainImages as number) ?? 60000);
  const line = (what: string, m: Manifest) =>
    console.log(
      `${what.padEnd(28)} ${acc(m).toFixed(2)}%  ${secs(m).toFixed(0).padStart(5)} s  ${
        images(m)
      } images stepped (${m.training.epochs} epochs on ${m.data.trainImages})`,
    );
  line("from scratch (reference)", ref);
  line("parent", parentM);
  line(`warm start from the parent`, warm);
  const d = acc(warm) - acc(ref);
  console.log(
    `warm - scratch accuracy: ${d >= 0 ? "+" : ""}${d.toFixed(2)} points (target >= -0.30)`,
  );
  console.log(
    `warm / scratch time: ${
      (secs(warm) / secs(ref)).toFixed(3)
    } (target <= 0.333); images stepped ${
      (images(warm) / images(ref)).toFixed(3)
    }; at the warm run's own rate (${warmRate.toFixed(0)} img/s) scratch would take ${
      (images(ref) / warmRate).toFixed(0)
    } s, ratio ${(secs(warm) / (images(ref) / warmRate)).toFixed(3)}`,
  );
}

main().catch((e) => {
  console.error(`error: ${(e as Error).message}`);
  process.exit(e instanceof FlagError ? 2 : 1);
});
