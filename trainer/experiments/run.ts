/**
 * The experiment's conductor. Forks worker processes (./job_worker.ts through ./pool.ts, one wasm thread each, so two
 * workers use both cores), has each measure its step speeds while the others do the same, plans
 * the remaining jobs and prints the estimated wall time, then hands out jobs longest first. It
 * is the only writer of results.json, saving after every finished cell so an interrupted run
 * resumes with the same --out; at the end of every session it redraws the figures and report.md.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { join } from "node:path";
import type { EngineBackend } from "../engine/tfjs_backend.ts";
import { formatDuration } from "../progress.ts";
import { accuracySpec, reconPng, renderSvg, scatterSpec } from "./charts.ts";
import type { Calibration } from "./calibrate.ts";
import { type ExperimentConfig, resultsHash } from "./config.ts";
import { cachedEpochs, type Job, type TrainEngine, vaeCachePath } from "./jobs.ts";
import { bestLatentJob, estimateJob, orderJobs, planJobs, schedule, type Sizes } from "./plan.ts";
import { bestLatent, renderReport } from "./report.ts";
import { loadResults, type Results, saveResults } from "./results.ts";
import type { FromWorker, ToWorker } from "./job_worker.ts";
import { type PoolWorker, WorkerPool } from "./pool.ts";
import { recordEvent, takeReady } from "./record.ts";

export interface RunOptions {
  cfg: ExperimentConfig;
  outDir: string;
  cacheDir: string;
  dataDir: string;
  backend: EngineBackend;
  threads: number;
  /** Engine of the VAE and CNN training steps: "auto" = onnxruntime when it works, else tfjs. */
  trainEngine: TrainEngine | "auto";
  /** Plan and estimate only: no job is run. */
  estimateOnly: boolean;
  log: (line: string) => void;
}

export { Interrupted } from "./pool.ts";

export function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()} (${os.platform()}/${os.arch()})`,
    cpus: cpus[0]?.model ?? "unknown",
    cpuCount: cpus.length,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
  };
}

/** Averages the workers' calibrations (each measured while the others ran: the real contention). */
function meanCalibration(cs: Calibration[]): Calibration {
  const out = { ...cs[0] };
  for (const k of Object.keys(out) as (keyof Calibration)[]) {
    out[k] = cs.reduce((a, c) => a + c[k], 0) / cs.length;
  }
  return out;
}

function describe(cal: Calibration, cfg: ExperimentConfig): string {
  return `VAE ${(cal.vaeStep * 1000).toFixed(0)} ms/step (${
    (cfg.vae.batchSize / cal.vaeStep).toFixed(0)
  } img/s), ` +
    `CNN ${(cal.cnnStep * 1000).toFixed(0)} ms/step (${
      (cfg.cnn.fit.batchSize / cal.cnnStep).toFixed(0)
    } img/s), ` +
    `logistic ${(cal.logisticStep * 1000).toFixed(2)} ms/step, MLP ${
      (cal.mlpStep * 1000).toFixed(2)
    } ms/step, ` +
    `encode ${(1 / cal.encodeImage).toFixed(0)} img/s, CNN inference ${
      (1 / cal.cnnPredictImage).toFixed(0)
    } img/s`;
}

/** Writes figures and report.md from the results (whatever part of the run exists). */
export async function writeOutputs(outDir: string, r: Results): Promise<string[]> {
  const written: string[] = [];
  const fig1 = Boolean(r.figures.scatter);
  if (r.figures.scatter) {
    writeFileSync(
      join(outDir, "fig1-latent-scatter.svg"),
      await renderSvg(scatterSpec(r.figures.scatter)),
    );
    written.push("fig1-latent-scatter.svg");
  }
  const recon = reconPng(r);
  if (recon) {
    writeFileSync(join(outDir, "fig2-reconstructions.png"), recon.png);
    written.push("fig2-reconstructions.png");
  }
  const fig3 = Object.keys(r.cells).length > 0;
  if (fig3) {
    writeFileSync(join(outDir, "fig3-accuracy-vs-samples.svg"), await renderSvg(accuracySpec(r)));
    written.push("fig3-accuracy-vs-samples.svg");
  }
  const notesPath = join(outDir, "notes.md");
  const notes = existsSync(notesPath) ? readFileSync(notesPath, "utf8") : undefined;
  writeFileSync(
    join(outDir, "report.md"),
    renderReport(r, { fig1, fig2: recon?.latents ?? null, fig3 }, notes),
  );
  written.push("report.md");
  return written;
}

type Ready = Extract<FromWorker, { type: "ready" }>;

/** Step 1: init and calibrate all workers at once, so each measures under the others' load. */
async function initWorkers(pool: WorkerPool, o: RunOptions, r: Results): Promise<Calibration> {
  const { cfg, log } = o;
  log(
    `starting ${cfg.jobs} worker${
      cfg.jobs > 1 ? "s" : ""
    } (engine init, data load, speed calibration)...`,
  );
  const ready = await pool.race(
    Promise.all(pool.workers.map((w) =>
      new Promise<Ready>((resolve) => {
        const onMsg = (m: FromWorker) => {
          if (m.type === "ready") {
            w.child.off("message", onMsg);
            resolve(m);
          } else if (m.type === "error") {
            pool.fail(new Error(`worker ${w.id} failed to start: ${m.message}`));
          }
        };
        w.child.on("message", onMsg);
        const init: ToWorker = {
          type: "init",
          worker: w.id,
          cfg,
          dataDir: o.dataDir,
          cacheDir: o.cacheDir,
          backend: o.backend,
          threads: o.threads,
          trainEngine: o.trainEngine,
          calibrate: true,
        };
        w.child.send(init);
      })
    )),
  );
  r.engine = `${ready[0].engine}; VAE and CNN training steps: ${
    ready[0].trainEngine === "ort" ? "onnxruntime training graph (1 thread)" : "tfjs"
  } (${ready[0].trainEngineNote})`;
  if (ready.some((m) => m.trainEngine !== ready[0].trainEngine)) {
    throw new Error(
      `workers disagree on the training engine (${ready.map((m) => m.trainEngine).join(", ")}): ${
        ready.map((m) => m.trainEngineNote).join("; ")
      }`,
    );
  }
  r.data = ready[0].data;
  const cal = meanCalibration(ready.map((m) => m.calibration!));
  log(
    `engine: ${r.engine}; measured speeds (per worker, ${cfg.jobs} running): ${describe(cal, cfg)}`,
  );
  return cal;
}

/** Step 2: the jobs left, their estimated cost and the estimated wall time (logged). */
function planRun(o: RunOptions, r: Results, cal: Calibration, startup: number) {
  const { cfg, log } = o;
  const ctxForCache = {
    cfg,
    cacheDir: o.cacheDir,
    dataId: r.data!.fingerprint["train-images-idx3-ubyte.gz"] ?? r.data!.dir,
  };
  const sizes: Sizes = {
    trainCount: 60000,
    vaeTrainCount: cfg.vae.trainCount > 0 ? Math.min(cfg.vae.trainCount, 60000) : 60000,
    testCount: cfg.testCount > 0 ? Math.min(cfg.testCount, 10000) : 10000,
    cachedEpochs: (L, k) => cachedEpochs(vaeCachePath(ctxForCache, L, k)),
  };
  const cost = (j: Job) => estimateJob(cfg, j, cal, sizes);
  const jobs = planJobs(cfg, r);
  const plan = schedule(jobs, cfg.jobs, cost);
  const estimateSeconds = plan.wallSeconds + startup;
  r.estimate = {
    wallSeconds: estimateSeconds,
    cpuSeconds: plan.cpuSeconds,
    jobs: cfg.jobs,
    calibration: cal,
  };
  const load = os.loadavg()[0];
  log(
    `plan: ${jobs.length} jobs, ${formatDuration(plan.cpuSeconds)} of work on ${cfg.jobs} worker${
      cfg.jobs > 1 ? "s" : ""
    }: ` +
      `estimated wall time ${formatDuration(estimateSeconds)} (h:mm:ss, incl. ${
        startup.toFixed(0)
      } s start-up)` +
      (cfg.latents.length > 1
        ? `, plus the Table 2 heads at our best latent if it is not ${cfg.table2Latent}`
        : ""),
  );
  // Speeds were measured under the current load; say so when other work competes for the cores.
  if (load > os.cpus().length + 0.5) {
    log(
      `note: load average ${
        load.toFixed(1)
      } on ${os.cpus().length} cores while measuring: other work is running, so the estimate holds only while it does`,
    );
  }
  return { jobs, plan, cost, estimateSeconds };
}

/** Adds our best latent's Table 2 heads to the queue when they are new; true when added. */
function queueBestLatentJob(o: RunOptions, r: Results, queue: Job[], cost: (j: Job) => number) {
  const best = bestLatent(r);
  r.bestLatent = best;
  const extra = best !== null ? bestLatentJob(o.cfg, r, best) : null;
  if (!extra) return false;
  o.log(
    `our best latent is ${best} (not ${o.cfg.table2Latent}): adding its Table 2 heads, ~${
      formatDuration(cost(extra))
    }`,
  );
  queue.push(extra);
  queue.splice(0, queue.length, ...orderJobs(queue, cost));
  return true;
}

/** Estimated work left: the queue plus the unfinished part of the jobs running elsewhere. */
function secondsLeft(queue: Job[], others: PoolWorker[], cost: (j: Job) => number, now: number) {
  return queue.reduce((a, j) => a + cost(j), 0) +
    others.filter((x) => x.job).reduce(
      (a, x) => a + Math.max(0, cost(x.job!) - (now - x.jobStart) / 1000),
      0,
    );
}

/**
 * Step 3: the queue stays in longest-first order and a free worker takes its head; once no
 * latent-size job is left, our best latent's Table 2 heads join the queue when they are new.
 */
function dispatch(
  pool: WorkerPool,
  o: RunOptions,
  r: Results,
  jobs: Job[],
  cost: (j: Job) => number,
  save: () => void,
  t0: number,
): Promise<void> {
  const { cfg, log } = o;
  const workers = pool.workers;
  const queue = orderJobs(jobs, cost);
  const total = { jobs: jobs.length, done: 0 };
  const ratio = { actual: 0, estimated: 0 };
  let bestScheduled = false;
  const vaeJob = (j: Job | null) => j?.kind === "latent" || j?.kind === "candidate";
  const latentPending = () => queue.some(vaeJob) || workers.some((w) => vaeJob(w.job));
  const ended = new Set<string>();
  const addBestLatentJob = () => {
    bestScheduled = true;
    if (queueBestLatentJob(o, r, queue, cost)) total.jobs++;
  };
  const finished = (w: PoolWorker, m: Extract<FromWorker, { type: "done" }>) => {
    r.jobs.push({ id: m.jobId, worker: w.id, seconds: m.seconds });
    ended.add(m.jobId);
    total.done++;
    // Re-estimate the rest from how the finished jobs compared with their estimates.
    ratio.actual += m.seconds;
    ratio.estimated += cost(w.job!);
    const now = performance.now();
    const eta = secondsLeft(queue, workers.filter((x) => x !== w), cost, now) *
      (ratio.actual / ratio.estimated) / cfg.jobs;
    log(
      `[w${w.id}] done ${m.jobId} in ${
        formatDuration(m.seconds)
      }; ${total.done}/${total.jobs} jobs, ${formatDuration((now - t0) / 1000)} elapsed, ~${
        formatDuration(eta)
      } left`,
    );
    w.job = null;
  };
  return pool.race(
    new Promise<void>((resolve) => {
      const next = (w: PoolWorker) => {
        if (!bestScheduled && !latentPending()) addBestLatentJob();
        const running = workers.some((x) => x.job !== null);
        const job = takeReady(cfg, r, queue, ended, running, (e) => pool.fail(e));
        if (!job) {
          if (!queue.length && workers.every((x) => x.job === null)) resolve();
          return;
        }
        w.job = job;
        w.jobStart = performance.now();
        log(`[w${w.id}] start ${job.id} (est. ${formatDuration(cost(job))})`);
        const msg: ToWorker = { type: "job", job };
        w.child.send(msg);
      };
      for (const w of workers) {
        w.child.on("message", (m: FromWorker) => {
          if (m.type === "event") {
            recordEvent(w, m.event, r, log);
            if (m.event.type !== "log") save();
          } else if (m.type === "done") {
            finished(w, m);
            save();
            next(w);
            // A job that waited on this one may now go to a worker left idle.
            for (const x of workers) if (x.job === null && x !== w) next(x);
          } else if (m.type === "error") {
            pool.fail(new Error(`job "${m.jobId ?? "?"}" failed in worker ${w.id}: ${m.message}`));
          }
        });
        next(w);
      }
    }),
  );
}

export async function runExperiments(
  o: RunOptions,
): Promise<{ results: Results; estimateSeconds: number; written: string[] }> {
  const { cfg, log } = o;
  if (!o.estimateOnly) mkdirSync(o.outDir, { recursive: true });
  const resultsPath = join(o.outDir, "results.json");
  const r = loadResults(resultsPath, cfg, resultsHash(cfg));
  r.machine = machineInfo();
  const session = { startedAt: new Date().toISOString(), seconds: 0, finished: false };
  if (!o.estimateOnly) r.sessions.push(session);
  const t0 = performance.now();
  const save = () => {
    session.seconds = (performance.now() - t0) / 1000;
    saveResults(resultsPath, r);
  };
  if (Object.keys(r.cells).length) {
    log(`resuming ${resultsPath}: ${Object.keys(r.cells).length} cells already done`);
  }

  const pool = new WorkerPool(cfg.jobs, log);
  const written: string[] = [];
  let estimateSeconds = 0;
  try {
    const cal = await initWorkers(pool, o, r);
    const planned = planRun(o, r, cal, (performance.now() - t0) / 1000);
    estimateSeconds = planned.estimateSeconds;
    if (o.estimateOnly) {
      for (const s of planned.plan.order) {
        log(
          `  worker ${s.worker + 1}: ${formatDuration(s.start).padStart(7)} – ${
            formatDuration(s.end).padStart(7)
          }  ${s.job.id}`,
        );
      }
      return { results: r, estimateSeconds, written };
    }
    save();
    await dispatch(pool, o, r, planned.jobs, planned.cost, save, t0);
    session.finished = true;
    r.bestLatent = bestLatent(r);
    return { results: r, estimateSeconds, written };
  } finally {
    pool.stop();
    if (!o.estimateOnly) {
      save();
      try {
        written.push(...(await writeOutputs(o.outDir, r)));
      } catch (e) {
        log(`could not write the report and figures: ${(e as Error).message}`);
      }
    }
  }
}
