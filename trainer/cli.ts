/**
 * The trainer's command line (`deno task train -- ...` runs it under Node): the usage text and
 * the table of subcommands, each in its own module under ./commands/:
 *   train   train the VAE (+ joint head), checkpoint every epoch, export a bundle at the end
 *   export  write a bundle from a checkpoint
 *   recon   reconstructions of test images and the test -ELBO of a checkpoint
 *   publish put a bundle into the model registry, activate, roll back (trainer/publish.ts)
 *   calibrate-novelty  fit and calibrate a bundle's novelty score into its manifest (trainer/novelty.ts)
 *   quantize add an int8 serving graph beside the fp32 one in a bundle (trainer/quantize.ts)
 *   samples add the demo's sample images to an existing bundle (idempotent)
 * Flags are parsed once into a typed config; unknown flags are errors. A bad flag or bad data
 * exits 2, any other failure 1.
 */
import { FlagError } from "../common/flags.ts";
import { DataError } from "./data.ts";
import { DatasetError } from "./datasets/mod.ts";
import { WarmStartError } from "./warm_start.ts";
import type { Command } from "./commands/common.ts";
import { cmdCalibrateNovelty } from "./commands/calibrate_novelty.ts";
import { cmdExport } from "./commands/export.ts";
import { cmdPublish } from "./commands/publish.ts";
import { cmdQuantize } from "./commands/quantize.ts";
import { cmdRecon } from "./commands/recon.ts";
import { cmdSamples } from "./commands/samples.ts";
import { cmdTrain } from "./commands/train.ts";

const USAGE = `Usage: deno task train -- [train] [flags]      train, checkpoint, export a bundle
       deno task train -- export --checkpoint <file> --out <dir>
       deno task train -- recon --checkpoint <file> --out <png>   reconstructions + test ELBO
       deno task train -- publish <bundle-dir> [--registry models]  (see deno task publish -- --help)
       deno task train -- calibrate-novelty <bundle-dir>   novelty score + percentiles into the manifest
       deno task train -- quantize <bundle-dir> [--calibration-images 2000]  add the int8 graph
       deno task train -- samples <bundle-dir> [--data <path>]   add the demo's sample images`;

const COMMANDS: Record<string, Command> = {
  train: cmdTrain,
  export: cmdExport,
  recon: cmdRecon,
  "calibrate-novelty": cmdCalibrateNovelty,
  quantize: cmdQuantize,
  samples: cmdSamples,
  publish: cmdPublish,
};

export async function main(argvIn: string[]): Promise<number> {
  // `deno task train -- ...` passes the "--" through.
  const argv = argvIn[0] === "--" ? argvIn.slice(1) : argvIn;
  const [cmd, ...rest] = argv[0] && !argv[0].startsWith("-") ? argv : ["train", ...argv];
  try {
    const command = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
    if (!command) throw new FlagError(`Unknown command "${cmd}"\n${USAGE}`);
    return await command(rest, USAGE);
  } catch (e) {
    if (
      e instanceof FlagError || e instanceof DataError || e instanceof DatasetError ||
      e instanceof WarmStartError
    ) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    // A plain message, not a rethrow: the wasm runtime's handler would print its whole source.
    console.error(
      `error: ${(e as Error).message}${process.env.DEBUG ? `\n${(e as Error).stack}` : ""}`,
    );
    return 1;
  }
}

if (
  import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("trainer/cli.ts")
) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
