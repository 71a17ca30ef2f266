/**
 * What the Deno scripts share about their command line: how they run their main (exit with its
 * status; a FlagError prints the message and the help, any other error `name: message`; both
 * exit 2), and the flags naming the bundle they work on.
 */
import { resolveActive } from "../registry/registry.ts";
import {
  FlagError,
  type FlagSpecs,
  formatHelp,
  parseCommandFlags,
  type ParsedFlags,
} from "../common/flags.ts";

/** --bundle and --registry: the bundle to use, by its directory or as a registry's active one. */
export const BUNDLE_FLAGS = {
  bundle: { type: "string", help: "bundle dir (default: the registry's active model)" },
  registry: {
    type: "string",
    default: "models",
    help: "registry dir used when --bundle is absent",
  },
} as const satisfies FlagSpecs;

/** The bundle directory: --bundle, else the active version in --registry (of `model`, if given). */
export async function bundleDir(
  bundle: string | undefined,
  registry: string,
  model?: string,
): Promise<string> {
  return bundle ?? (await resolveActive(registry, model)).dir;
}

export async function runScript(
  name: string,
  usage: string,
  specs: FlagSpecs,
  main: (args: string[]) => Promise<number>,
): Promise<never> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(
      e instanceof FlagError
        ? `${e.message}\n\n${formatHelp(usage, specs)}`
        : `${name}: ${(e as Error).message}`,
    );
    Deno.exit(2);
  }
}

/**
 * Flags of a script whose work runs at the top level (bench_swap*.ts): parsed with the project's
 * flag parser, so `--help` prints every flag; a bad flag prints the message and the help and
 * exits 2.
 */
export function runFlags<S extends FlagSpecs>(specs: S, usage: string): ParsedFlags<S> {
  try {
    const flags = parseCommandFlags(Deno.args, specs, usage);
    if (!flags) Deno.exit(0);
    return flags;
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    console.error(`${e.message}\n\n${formatHelp(usage, specs)}`);
    Deno.exit(2);
  }
}
