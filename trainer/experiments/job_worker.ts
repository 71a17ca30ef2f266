/**
 * Entry of a worker process (forked by ./run.ts): loads the data, initialises the engine (one
 * wasm thread), measures step speeds if asked, then runs the jobs the parent sends one at a
 * time and streams their results back over the IPC channel. Workers never write results.json:
 * the parent is its only writer. A worker exits when told to or when its parent goes away.
 */
import { loadFashionMnist, take } from "../data.ts";
import { type EngineBackend, initEngine } from "../engine/tfjs_backend.ts";
import type { ExperimentConfig } from "./config.ts";
import { calibrate, type Calibration } from "./calibrate.ts";
import { runCandidateJob } from "./candidate.ts";
import {
  type Job,
  type JobContext,
  type JobEvent,
  liveTensors,
  resolveTrainEngine,
  runCnnJob,
  runLatentJob,
  type TrainEngine,
} from "./jobs.ts";

export type ToWorker =
  | {
    type: "init";
    worker: number;
    cfg: ExperimentConfig;
    dataDir: string;
    cacheDir: string;
    backend: EngineBackend;
    threads: number;
    trainEngine: TrainEngine | "auto";
    calibrate: boolean;
  }
  | { type: "job"; job: Job }
  | { type: "exit" };

export type FromWorker =
  | {
    type: "ready";
    worker: number;
    engine: string;
    trainEngine: TrainEngine;
    trainEngineNote: string;
    calibration: Calibration | null;
    data: { dir: string; fingerprint: Record<string, string> };
  }
  | { type: "event"; worker: number; jobId: string; event: JobEvent }
  | { type: "done"; worker: number; jobId: string; seconds: number }
  | { type: "error"; worker: number; jobId: string | null; message: string };

function send(m: FromWorker): void {
  process.send!(m);
}

let ctx: JobContext | null = null;
let id = 0;
let currentJob: string | null = null;

async function onMessage(m: ToWorker): Promise<void> {
  if (m.type === "exit") {
    process.exit(0);
  }
  if (m.type === "init") {
    id = m.worker;
    const engine = await initEngine({ backend: m.backend, threads: m.threads, log: () => {} });
    const data = loadFashionMnist(m.dataDir);
    const vae = await resolveTrainEngine(m.trainEngine, data.train);
    const test = m.cfg.testCount > 0 && m.cfg.testCount < data.test.count
      ? take(data.test, Int32Array.from({ length: m.cfg.testCount }, (_, i) => i))
      : data.test;
    ctx = {
      cfg: m.cfg,
      train: data.train,
      test,
      testFull: data.test,
      dataId: data.fingerprint["train-images-idx3-ubyte.gz"] ?? data.dir,
      cacheDir: m.cacheDir,
      trainEngine: vae.engine,
      emit: (event) => send({ type: "event", worker: id, jobId: currentJob ?? "", event }),
    };
    const calibration = m.calibrate ? await calibrate(m.cfg, data.train, vae.engine) : null;
    send({
      type: "ready",
      worker: id,
      engine: engine.description,
      trainEngine: vae.engine,
      trainEngineNote: vae.note,
      calibration,
      data: { dir: data.dir, fingerprint: data.fingerprint },
    });
    return;
  }
  if (!ctx) throw new Error("worker received a job before init");
  const job = m.job;
  currentJob = job.id;
  const t0 = performance.now();
  const before = liveTensors();
  if (job.kind === "latent") await runLatentJob(ctx, job);
  else if (job.kind === "candidate") await runCandidateJob(ctx, job);
  else await runCnnJob(ctx, job);
  const leaked = liveTensors() - before;
  if (leaked > 0) {
    ctx.emit({ type: "log", line: `warning: job ${job.id} left ${leaked} tensors alive` });
  }
  currentJob = null;
  send({ type: "done", worker: id, jobId: job.id, seconds: (performance.now() - t0) / 1000 });
}

// One message at a time: jobs are long and synchronous, so a queue of promises keeps order.
let chain = Promise.resolve();
process.on("message", (m: ToWorker) => {
  chain = chain.then(() => onMessage(m)).catch((e: Error) => {
    send({
      type: "error",
      worker: id,
      jobId: currentJob,
      message: `${e.message}${process.env.DEBUG ? `\n${e.stack}` : ""}`,
    });
    currentJob = null;
  });
});
process.on("disconnect", () => process.exit(0));
if (!process.send) {
  console.error(
    "trainer/experiments/job_worker.ts is started by trainer/experiments/main.ts, not by hand",
  );
  process.exit(2);
}
