/**
 * The experiment's worker processes (./job_worker.ts, one wasm thread each, so two workers use
 * both cores): forked with tsx, watched for an unexpected exit, stopped together, and a Ctrl-C
 * turned into one Interrupted failure that every wait of the conductor races against.
 */
import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Job } from "./jobs.ts";

export class Interrupted extends Error {
  constructor() {
    super("interrupted");
    this.name = "Interrupted";
  }
}

export interface PoolWorker {
  id: number;
  child: ChildProcess;
  job: Job | null;
  jobStart: number;
}

export class WorkerPool {
  readonly workers: PoolWorker[] = [];
  readonly #failed: Promise<never>;
  #fail: (e: Error) => void = () => {};
  #finishing = false;
  readonly #onSigint: () => void;

  constructor(count: number, log: (line: string) => void) {
    this.#failed = new Promise<never>((_, reject) => (this.#fail = reject));
    this.#failed.catch(() => {});
    // tsx is passed explicitly (not inherited execArgv, which may hold --test and friends).
    const tsx = import.meta.resolve("tsx");
    const workerPath = fileURLToPath(new URL("./job_worker.ts", import.meta.url));
    for (let i = 0; i < count; i++) {
      const child = fork(workerPath, [], {
        execArgv: ["--import", tsx],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      child.on("exit", (code, signal) => {
        if (this.#finishing) return;
        const job = this.workers[i]?.job;
        this.#fail(
          new Error(
            `worker ${i + 1} (pid ${child.pid}) exited unexpectedly (${signal ?? `code ${code}`})${
              job ? ` while running ${job.id}` : ""
            }`,
          ),
        );
      });
      this.workers.push({ id: i + 1, child, job: null, jobStart: 0 });
    }
    this.#onSigint = () => {
      this.#finishing = true; // the workers get the same Ctrl-C; their exit is expected now
      log("\nCtrl-C: stopping the workers; finished cells are saved");
      this.#fail(new Interrupted());
    };
    process.on("SIGINT", this.#onSigint);
  }

  /** Fails every pending race() with `e`. */
  fail(e: Error): void {
    this.#fail(e);
  }

  /** `p`, unless a worker dies, a job fails or Ctrl-C comes first. */
  race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.#failed]);
  }

  /** Stops the workers (an exit from now on is expected) and forgets the Ctrl-C handler. */
  stop(): void {
    this.#finishing = true;
    process.off("SIGINT", this.#onSigint);
    for (const w of this.workers) {
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGTERM");
    }
  }
}
