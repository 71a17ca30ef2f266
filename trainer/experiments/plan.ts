/**
 * What is left to do and how long it will take. `planJobs` turns the config and the cells
 * already in results.json into jobs (one per VAE latent, one per CNN cell); `estimateJob`
 * prices a job from measured per-step speeds; `schedule` simulates the parent's dispatch
 * (longest job first to the first free worker), which is also the order jobs are run in, so the
 * printed estimate is the plan's own wall time, not a sum divided by the worker count.
 */
import { headSteps } from "../classifiers.ts";
import { cnnSteps } from "../cnn_fit.ts";
import { type ExperimentConfig, seedsFor, vaeLatents } from "./config.ts";
import { FEW_LABEL_HEADS, fewLabelSeconds, isFewLabel } from "./few_label.ts";
import type { Calibration } from "./calibrate.ts";
import type { Job, LatentJob } from "./jobs.ts";
import { cellKey, type CellSpec, type Classifier, type Results } from "./results.ts";
import { candidateJobId } from "./candidate.ts";
import { candidatesOf, SELECT_SAMPLES, VALIDATION_COUNT } from "./select.ts";

function headCells(cfg: ExperimentConfig, latent: number, samples: number[]): CellSpec[] {
  const out: CellSpec[] = [];
  for (const n of samples) {
    for (let s = 0; s < seedsFor(cfg, n); s++) {
      const few = cfg.withFewLabel && n <= cfg.fewLabel.maxSamples ? FEW_LABEL_HEADS : [];
      for (const classifier of ["logistic", "mlp", ...few] as Classifier[]) {
        out.push({
          key: cellKey(classifier, latent, n, s),
          classifier,
          latent,
          samples: n,
          seed: s,
        });
      }
    }
  }
  return out;
}

/** Head cells of one latent: Table 1's if it is a Table 1 row, Table 2's if it is Table 2's latent. */
export function latentCells(cfg: ExperimentConfig, latent: number, table2: boolean): CellSpec[] {
  const samples = new Set<number>();
  if (cfg.latents.includes(latent)) samples.add(cfg.table1Samples);
  if (table2) cfg.samples.forEach((n) => samples.add(n));
  return headCells(cfg, latent, [...samples].sort((a, b) => a - b));
}

export function cnnCells(cfg: ExperimentConfig): CellSpec[] {
  const out: CellSpec[] = [];
  for (const n of cfg.samples) {
    for (let s = 0; s < seedsFor(cfg, n); s++) {
      out.push({
        key: cellKey("cnn", null, n, s),
        classifier: "cnn",
        latent: null,
        samples: n,
        seed: s,
      });
    }
  }
  return out;
}

/** Candidate jobs of a latent (--vae-candidates > 1) not scored yet. */
function candidateJobs(cfg: ExperimentConfig, r: Results, L: number): Job[] {
  const k = candidatesOf(cfg);
  if (k <= 1) return [];
  const scored = new Set((r.vaeSelection?.[L]?.candidates ?? []).map((c) => c.candidate));
  return Array.from({ length: k }, (_, i) => i).filter((i) => !scored.has(i)).map((i) => ({
    kind: "candidate",
    id: candidateJobId(L, i),
    latent: L,
    candidate: i,
  }));
}

/** Cells dealt to `parts` jobs, each to the part with the fewest head steps so far. */
export function splitCells(cfg: ExperimentConfig, cells: CellSpec[], parts: number): CellSpec[][] {
  const steps = (c: CellSpec) =>
    headSteps(c.samples, c.classifier === "logistic" ? cfg.heads.logisticFit : cfg.heads.mlpFit);
  const out: CellSpec[][] = Array.from({ length: Math.max(1, parts) }, () => []);
  const load = out.map(() => 0);
  for (const c of [...cells].sort((a, b) => steps(b) - steps(a))) {
    const i = load.indexOf(Math.min(...load));
    out[i].push(c);
    load[i] += steps(c);
  }
  return out;
}

/**
 * The latent jobs and CNN jobs still to run (finished cells and figure data are skipped); with
 * --vae-candidates > 1 also the candidate jobs, which each latent job waits for.
 */
export function planJobs(cfg: ExperimentConfig, r: Results): Job[] {
  const jobs: Job[] = [];
  for (const L of vaeLatents(cfg)) {
    const cells = latentCells(cfg, L, L === cfg.table2Latent).filter((c) => !r.cells[c.key]);
    const scatter = L === cfg.scatterLatent && !r.figures.scatter;
    const recon = cfg.reconLatents.includes(L) && !r.figures.recon[L];
    const candidates = candidateJobs(cfg, r, L);
    jobs.push(...candidates);
    if (!(cells.length || scatter || recon || !r.vaes[L])) continue;
    if (candidatesOf(cfg) <= 1) {
      jobs.push({ kind: "latent", id: `vae L=${L}`, latent: L, cells, scatter, recon });
      continue;
    }
    // The picked VAE is trained already: its heads split over the workers instead of one. The
    // few-label cells stay together in part 1, which builds their kNN graph once.
    const after = candidates.map((j) => j.id);
    const few = cells.filter((c) => isFewLabel(c.classifier));
    const rest = cells.filter((c) => !isFewLabel(c.classifier));
    splitCells(cfg, rest, cfg.jobs).forEach((part, i) => {
      if (i > 0 && part.length === 0) return;
      const id = i === 0 ? `vae L=${L}` : `heads L=${L} part ${i + 1}`;
      const figures = i === 0 ? { scatter, recon } : { scatter: false, recon: false };
      const own = i === 0 ? [...part, ...few] : part;
      jobs.push({ kind: "latent", id, latent: L, cells: own, ...figures, after });
    });
  }
  for (const c of cfg.withCnn ? cnnCells(cfg) : []) {
    if (!r.cells[c.key]) {
      jobs.push({ kind: "cnn", id: `cnn N=${c.samples} seed ${c.seed}`, cell: c });
    }
  }
  return jobs;
}

/**
 * The Table 2 head cells at our best latent (when it is not Table 2's latent): run once every
 * Table 1 row is done, since only then is "best" known.
 */
export function bestLatentJob(cfg: ExperimentConfig, r: Results, best: number): LatentJob | null {
  if (best === cfg.table2Latent) return null;
  const cells = latentCells(cfg, best, true).filter((c) => !r.cells[c.key]);
  return cells.length
    ? {
      kind: "latent",
      id: `heads at best L=${best}`,
      latent: best,
      cells,
      scatter: false,
      recon: false,
    }
    : null;
}

export interface Sizes {
  trainCount: number;
  vaeTrainCount: number;
  testCount: number;
  /** Epochs of each latent's VAE (or its candidate k) already in the cache. */
  cachedEpochs: (latent: number, candidate?: number) => number;
}

/** Seconds a job should take at the measured speeds. */
export function estimateJob(cfg: ExperimentConfig, job: Job, cal: Calibration, z: Sizes): number {
  if (job.kind === "cnn") {
    const n = job.cell.samples;
    const batchShare = Math.min(cfg.cnn.fit.batchSize, n) / cfg.cnn.fit.batchSize;
    return cnnSteps(n, cfg.cnn.fit) * cal.cnnStep * batchShare +
      (z.testCount + Math.min(n, cfg.trainAccMax)) * cal.cnnPredictImage;
  }
  const epochsLeft = (candidate: number) =>
    Math.max(0, cfg.vae.epochs - z.cachedEpochs(job.latent, candidate));
  const vaeSeconds = (epochs: number) =>
    epochs * Math.floor(z.vaeTrainCount / cfg.vae.batchSize) * cal.vaeStep;
  if (job.kind === "candidate") {
    return vaeSeconds(epochsLeft(job.candidate)) +
      (SELECT_SAMPLES + VALIDATION_COUNT) * cal.encodeImage +
      headSteps(SELECT_SAMPLES, cfg.heads.logisticFit) * cal.logisticStep;
  }
  // With candidates, the picked VAE was trained by its candidate job.
  const vae = candidatesOf(cfg) > 1 ? 0 : vaeSeconds(epochsLeft(0));
  const wanted = job.cells.reduce((a, c) => a + c.samples, 0);
  const few = fewLabelSeconds(cfg, job.cells, cal, z);
  const encoded = z.testCount * 3.5 +
    (wanted > z.trainCount / 3 || few > 0 ? z.trainCount : wanted) +
    (job.scatter ? cfg.scatterCount : 0);
  const heads = job.cells.filter((c) => c.classifier === "logistic" || c.classifier === "mlp")
    .reduce((a, c) => {
      const logistic = c.classifier === "logistic";
      return a +
        headSteps(c.samples, logistic ? cfg.heads.logisticFit : cfg.heads.mlpFit) *
          (logistic ? cal.logisticStep : cal.mlpStep);
    }, 0);
  return vae + encoded * cal.encodeImage + heads + few;
}

export interface Schedule {
  wallSeconds: number;
  cpuSeconds: number;
  /** Jobs in dispatch order with their worker and estimated start and end. */
  order: { job: Job; worker: number; start: number; end: number; seconds: number }[];
}

/** Longest job first, to whichever worker frees up first (the dispatch rule of ./run.ts). */
export function orderJobs(jobs: Job[], cost: (j: Job) => number): Job[] {
  return [...jobs].sort((a, b) => cost(b) - cost(a));
}

/** Jobs a latent job waits for (its VAE candidates), empty for the others. */
export function dependsOn(job: Job): string[] {
  return job.kind === "latent" ? job.after ?? [] : [];
}

/** As dispatched: a job waiting for others starts once they have ended. */
export function schedule(jobs: Job[], workers: number, cost: (j: Job) => number): Schedule {
  const free = new Array(Math.max(1, workers)).fill(0);
  const order: Schedule["order"] = [];
  const ends = new Map<string, number>();
  const ordered = orderJobs(jobs, cost);
  const waiting = ordered.filter((j) => dependsOn(j).length > 0);
  for (const job of [...ordered.filter((j) => dependsOn(j).length === 0), ...waiting]) {
    const w = free.indexOf(Math.min(...free));
    const seconds = cost(job);
    const start = Math.max(free[w], ...dependsOn(job).map((id) => ends.get(id) ?? 0));
    order.push({ job, worker: w, start, end: start + seconds, seconds });
    free[w] = start + seconds;
    ends.set(job.id, start + seconds);
  }
  return {
    wallSeconds: Math.max(...free),
    cpuSeconds: order.reduce((a, o) => a + o.seconds, 0),
    order,
  };
}
