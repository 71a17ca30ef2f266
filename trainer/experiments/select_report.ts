/**
 * report.md's section on the VAE choice (--vae-candidates > 1, ./select.ts): how the candidates
 * were scored, each one's validation accuracy and which one the cells ran on. Empty without a
 * choice, so a run without the flag renders as before.
 */
import { formatDuration } from "../progress.ts";
import type { Results } from "./results.ts";
import { candidatesOf } from "./select.ts";

export function selectionLines(r: Results): string[] {
  const k = candidatesOf(r.config);
  const sel = r.vaeSelection ?? {};
  if (k <= 1 || Object.keys(sel).length === 0) return [];
  const first = Object.values(sel)[0].candidates[0];
  const lines = [
    `## VAE selection — ${k} candidates per latent, picked on a validation split of train`,
    "",
    `The study trained several VAEs without labels and kept the one whose latent classified best. Here each latent has ${k} VAEs that differ only in seed; each is scored by a logistic head trained on ${
      first?.selectSamples.toLocaleString("en-US") ?? "?"
    } labelled training images of its latent and tested on ${
      first?.validationCount.toLocaleString("en-US") ?? "?"
    } other training images held out for this (no cell in any seed trains on them; the test set takes no part). Every cell of the latent runs on the picked VAE.`,
    "",
    "| latent | candidate | VAE seed | validation accuracy | VAE training | picked |",
    "|---|---|---|---|---|---|",
  ];
  for (const [latent, s] of Object.entries(sel).sort((a, b) => Number(a[0]) - Number(b[0]))) {
    for (const c of s.candidates) {
      lines.push(
        `| ${latent} | ${c.candidate} | ${c.seed} | ${(c.validationAcc * 100).toFixed(2)}% | ${
          c.cached ? "cached" : formatDuration(c.trainSeconds)
        } | ${s.picked === c.candidate ? "**yes**" : ""} |`,
      );
    }
  }
  lines.push("");
  return lines;
}

/** Seconds the candidate jobs spent training VAEs (the picked one's record says "cached"). */
export function candidateTrainSeconds(r: Results): number {
  return Object.values(r.vaeSelection ?? {}).flatMap((s) => s.candidates)
    .reduce((a, c) => a + c.trainSeconds, 0);
}
