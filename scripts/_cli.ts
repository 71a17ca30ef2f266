/**
 * How the Deno scripts (bench_serve.ts, classify_testset.ts) run their main: exit with its
 * status; a FlagError prints the message and the help, any other error `name: message`;
 * both exit 2.
 */
import { FlagError, type FlagSpecs, formatHelp } from "../common/flags.ts";

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
