/**
 * The parent's side of a worker's events: each one recorded in the results (the parent is
 * results.json's only writer) and logged; and, with --vae-candidates > 1, the picked candidate
 * handed to a latent job as it is dispatched.
 */
import { formatDuration } from "../progress.ts";
import type { ExperimentConfig } from "./config.ts";
import type { FromWorker } from "./job_worker.ts";
import type { Job, LatentJob } from "./jobs.ts";
import { dependsOn } from "./plan.ts";
import type { PoolWorker } from "./pool.ts";
import type { Results } from "./results.ts";
import { candidatesOf, recordCandidate } from "./select.ts";

/** Records one event a worker reports (a cell, a VAE, a candidate's score, a figure's data). */
export function recordEvent(
  w: PoolWorker,
  e: Extract<FromWorker, { type: "event" }>["event"],
  r: Results,
  log: (s: string) => void,
): void {
  if (e.type === "log") log(`[w${w.id}] ${e.line}`);
  else if (e.type === "cell") {
    r.cells[e.cell.key] = e.cell;
    log(
      `[w${w.id}] ${e.cell.key}: train ${(e.cell.trainAcc * 100).toFixed(1)}%, test ${
        (e.cell.testAcc * 100).toFixed(1)
      }% (${e.cell.seconds.toFixed(1)} s)`,
    );
  } else if (e.type === "vae") {
    // A later job may reload a VAE this run trained; keep the training record.
    const had = r.vaes[e.vae.latent];
    if (!(e.vae.cached && had && !had.cached && had.epochs === e.vae.epochs)) {
      r.vaes[e.vae.latent] = e.vae;
    }
    log(
      `[w${w.id}] VAE L=${e.vae.latent}: test -ELBO ${e.vae.testElbo.toFixed(2)}${
        e.vae.cached ? " (cached)" : `, trained in ${formatDuration(e.vae.trainSeconds)}`
      }`,
    );
  } else if (e.type === "candidate") {
    const s = e.score;
    const sel = recordCandidate(r.vaeSelection ??= {}, s, candidatesOf(r.config));
    log(
      `[w${w.id}] VAE L=${s.latent} candidate ${s.candidate}: validation ${
        (s.validationAcc * 100).toFixed(2)
      }%${sel.picked === null ? "" : `; picked candidate ${sel.picked}`}`,
    );
  } else if (e.type === "scatter") {
    r.figures.scatter = e.scatter;
  } else if (e.type === "recon") {
    r.figures.recon[e.latent] = e.pixels;
    r.figures.testImages = e.testImages;
  }
}

/**
 * Takes from the queue the first job whose candidate jobs (if any) have all ended, with the
 * picked candidate filled in; null when none is ready yet (or on failure, given to `fail`).
 * Nothing ready while no job runs means a dependency can never be met: a failure rather than
 * a run that waits forever.
 */
export function takeReady(
  cfg: ExperimentConfig,
  r: Results,
  queue: Job[],
  ended: Set<string>,
  anyRunning: boolean,
  fail: (e: Error) => void,
): Job | null {
  const at = queue.findIndex((j) => dependsOn(j).every((id) => ended.has(id)));
  if (at < 0) {
    if (queue.length && !anyRunning) {
      fail(new Error(`jobs wait for jobs that never ran: ${queue.map((j) => j.id).join(", ")}`));
    }
    return null;
  }
  const job = queue[at];
  try {
    if (job.kind === "latent") withPickedCandidate(cfg, r, job);
  } catch (e) {
    fail(e as Error);
    return null;
  }
  queue.splice(at, 1);
  return job;
}

/** Gives a latent job the candidate its cells run on; an error if the choice is not made yet. */
export function withPickedCandidate(cfg: ExperimentConfig, r: Results, job: LatentJob): void {
  if (candidatesOf(cfg) <= 1) return;
  const picked = r.vaeSelection?.[job.latent]?.picked;
  if (picked === null || picked === undefined) {
    throw new Error(
      `${job.id}: no VAE candidate picked for latent ${job.latent} (scored: ${
        (r.vaeSelection?.[job.latent]?.candidates ?? []).map((c) => c.candidate).join(", ") ||
        "none"
      })`,
    );
  }
  job.candidate = picked;
}
