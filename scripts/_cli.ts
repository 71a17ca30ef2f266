/**
 * How the Deno scripts (bench_serve.ts, classify_testset.ts) run their main: exit with its
 * status; a FlagError prints the message and the help, any other error `name: message`;
 * both exit 2.
 */
import {
  FlagError,
  type FlagSpecs,
  formatHelp,
  type ParsedFlags,
  parseCommandFlags,
} from "../common/flags.ts";

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
