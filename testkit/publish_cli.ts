/**
 * The publish CLI (trainer/publish.ts) run in-process by tests, on a fresh temporary registry:
 * run() resolves to the exit code the command line would give (errors reported as the CLI
 * reports them) and every line it printed is kept. node: APIs only, so Node tests can use it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { publishMain, reportPublishError } from "../trainer/publish.ts";

export interface PublishCli {
  /** A temporary directory; the registry is `reg` (its `models/`). */
  root: string;
  reg: string;
  /** What the runs printed so far. */
  lines: string[];
  run(args: string[]): Promise<number>;
  cleanup(): Promise<void>;
}

export async function publishCli(prefix: string): Promise<PublishCli> {
  const root = await mkdtemp(join(tmpdir(), prefix));
  const lines: string[] = [];
  const log = (s: string) => lines.push(s);
  return {
    root,
    reg: join(root, "models"),
    lines,
    run: (args) => publishMain(args, log).catch((e) => reportPublishError(e, log)),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}
