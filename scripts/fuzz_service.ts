/**
 * The full fuzz run (nightly; CI samples it in tests/service_fuzz_test.ts): every case of
 * tests/fuzz_cases.ts through app.request() on the native and wasm backends alternately, zero
 * 5xx and one error shape required. Prints the status counts and the time; exits 1 on the
 * first failing case, naming it (rerun it alone with the same --seed).
 *
 *   npx deno run -A scripts/fuzz_service.ts [--cases 10000] [--seed 20240601]
 */
import { parseCommandFlags } from "../common/flags.ts";
import { checkAnswer, fuzzCase } from "../testkit/fuzz_cases.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";
import { runScript } from "./_cli.ts";

const FLAGS = {
  cases: {
    type: "int",
    default: 10_000,
    help: "cases to run (the CI test samples the first 10,000)",
  },
  seed: { type: "int", default: 20240601, help: "generator seed (the CI test's default)" },
} as const;
const USAGE = "Usage: npx deno run -A scripts/fuzz_service.ts [flags]";

async function main(args: string[]): Promise<number> {
  const f = parseCommandFlags(args, FLAGS, USAGE);
  if (!f) return 0;
  const apps = [await serveBundle("native"), await serveBundle("wasm")].map((s) => s.app);
  const statuses = new Map<number, number>();
  const t0 = performance.now();
  for (let i = 0; i < (f.cases as number); i++) {
    const c = fuzzCase(f.seed as number, i);
    try {
      const status = await checkAnswer(await apps[i % 2].request(c.path, c.init), c);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    } catch (e) {
      console.error(`FAILED case ${i} (seed ${f.seed}): ${(e as Error).message}`);
      return 1;
    }
  }
  const summary = [...statuses.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`);
  console.log(
    `${f.cases} cases, 0 5xx, every error {error: {code, message}} in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s; statuses ${summary.join(", ")}`,
  );
  return 0;
}

if (import.meta.main) await runScript("fuzz_service", USAGE, FLAGS, main);
