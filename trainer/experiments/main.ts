/**
 * Command line of the experiments (`deno task experiments -- ...` runs it under Node): reproduce
 * the study's tables and figures, write results.json, report.md and three figures into a run
 * directory. Flags are parsed once into an ExperimentConfig (unknown flags are errors); an
 * interrupted run resumes when started again with the same --out.
 *
 *   node --import tsx trainer/experiments/main.ts [--quick] [--out runs/x] [--estimate] ...
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { FlagError, formatHelp, parseFlags } from "../../common/flags.ts";
import { DataError, resolveDataDir } from "../data.ts";
import type { EngineBackend } from "../engine/tfjs_backend.ts";
import { formatDuration } from "../progress.ts";
import { configFromFlags, EXPERIMENT_FLAGS } from "./config.ts";
import type { Results } from "./results.ts";
import { Interrupted, runExperiments, writeOutputs } from "./run.ts";
import type { EngineChoice } from "../engine/choice.ts";

const USAGE = `Usage: deno task experiments -- [flags]
Trains one unsupervised VAE per latent size, then logistic and MLP heads on its latent and a
pixel CNN on the same labelled subsets; writes results.json, report.md and figures to --out.`;

function timestamp(): string {
  return new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "Z");
}

export async function main(argvIn: string[]): Promise<number> {
  const argv = argvIn[0] === "--" ? argvIn.slice(1) : argvIn;
  const log = (s: string) => process.stderr.write(s + "\n");
  try {
    const { flags: f, positional } = parseFlags(argv, EXPERIMENT_FLAGS, process.env);
    if (f.help) {
      console.log(formatHelp(USAGE, EXPERIMENT_FLAGS));
      return 0;
    }
    if (positional.length) throw new FlagError(`Unexpected argument(s): ${positional.join(" ")}`);
    const cfg = configFromFlags(f);
    if (f["report-only"]) {
      if (!f.out) throw new FlagError("--report-only needs --out <run dir>");
      const dir = resolve(f.out as string);
      const path = join(dir, "results.json");
      if (!existsSync(path)) throw new FlagError(`--report-only: ${path} does not exist`);
      const r = JSON.parse(readFileSync(path, "utf8")) as Results;
      const written = await writeOutputs(dir, r);
      log(`wrote ${written.map((w) => join(dir, w)).join(", ")}`);
      return 0;
    }
    const outDir = resolve((f.out as string | undefined) ?? `runs/experiments-${timestamp()}`);
    log(
      `experiments (${cfg.mode}): latents ${cfg.latents.join(",")}; samples ${
        cfg.samples.join(",")
      }; ${cfg.seeds} seeds for N <= ${cfg.seedMaxSamples}; VAE ${cfg.vae.epochs} epochs; run dir ${outDir}`,
    );
    const t0 = performance.now();
    const { results, estimateSeconds, written } = await runExperiments({
      cfg,
      outDir,
      cacheDir: resolve(f["cache-dir"] as string),
      dataDir: resolveDataDir(f["data-dir"] as string | undefined),
      backend: f.backend as EngineBackend,
      threads: f.threads as number,
      trainEngine: f.engine as EngineChoice,
      estimateOnly: f.estimate as boolean,
      log,
    });
    if (f.estimate) return 0;
    const took = (performance.now() - t0) / 1000;
    log(
      `finished in ${formatDuration(took)} (estimated ${formatDuration(estimateSeconds)}); ${
        Object.keys(results.cells).length
      } cells; wrote ${written.map((w) => `${outDir}/${w}`).join(", ")}`,
    );
    return 0;
  } catch (e) {
    if (e instanceof FlagError || e instanceof DataError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    if (e instanceof Interrupted) {
      console.error(
        `interrupted; resume with the same flags plus --out <this run's dir> (finished cells and VAE checkpoints are kept)`,
      );
      return 130;
    }
    console.error(
      `error: ${(e as Error).message}${process.env.DEBUG ? `\n${(e as Error).stack}` : ""}`,
    );
    return 1;
  }
}

if (
  import.meta.url === `file://${process.argv[1]}` ||
  process.argv[1]?.endsWith("trainer/experiments/main.ts")
) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
