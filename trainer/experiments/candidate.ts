/**
 * A "candidate" job (--vae-candidates K > 1): trains or loads candidate k of a latent's VAE and
 * scores it for ./select.ts: a logistic head (the Table 2 logistic head and fit) trained on
 * SELECT_SAMPLES labelled non-validation images of the candidate's latent mu, scored on the
 * validation images. Only training images are touched; the test set is not loaded here.
 */
import { relative } from "node:path";
import { accuracy, encodeMu, predict, trainHead } from "../classifiers.ts";
import { take } from "../data.ts";
import { type JobContext, obtainVae } from "./jobs.ts";
import { type CandidateScore, selectionIndices, validationIndices } from "./select.ts";

export interface CandidateJob {
  kind: "candidate";
  id: string;
  latent: number;
  candidate: number;
}

export function candidateJobId(latent: number, candidate: number): string {
  return `vae L=${latent} candidate ${candidate}`;
}

export async function runCandidateJob(ctx: JobContext, job: CandidateJob): Promise<void> {
  const { cfg, train } = ctx;
  const L = job.latent;
  const vae = await obtainVae(ctx, L, job.candidate);
  const { encoder, decoder } = vae.models;
  try {
    const sel = take(train, selectionIndices(cfg, train.labels));
    const val = take(train, validationIndices(cfg, train.count));
    const head = cfg.heads.logistic;
    const model = trainHead(
      head,
      L,
      encodeMu(encoder, L, sel),
      sel.labels,
      sel.count,
      cfg.heads.logisticFit,
    );
    const validationAcc = accuracy(
      predict(model, encodeMu(encoder, L, val), val.count, [L]),
      val.labels,
    );
    model.dispose();
    const score: CandidateScore = {
      latent: L,
      candidate: job.candidate,
      seed: cfg.vae.arch.seed + job.candidate,
      validationAcc,
      validationCount: val.count,
      selectSamples: sel.count,
      trainSeconds: vae.seconds,
      cached: vae.cached,
      checkpoint: relative(process.cwd(), vae.path),
    };
    ctx.emit({ type: "candidate", score });
  } finally {
    encoder.dispose();
    decoder.dispose();
  }
}
