import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FlagError } from "../../common/flags.ts";
import { stratifiedIndices } from "../data.ts";
import { configFromFlags, resultsHash } from "./config.ts";
import type { Job, LatentJob } from "./jobs.ts";
import { planJobs, schedule } from "./plan.ts";
import { isFewLabel } from "./few_label.ts";
import { takeReady } from "./record.ts";
import { emptyResults, type Results } from "./results.ts";
import { main } from "./main.ts";
import {
  type CandidateScore,
  labelledIndices,
  labelledPool,
  recordCandidate,
  SELECT_SAMPLES,
  selectionIndices,
  type VaeSelection,
  VALIDATION_COUNT,
  validationIndices,
} from "./select.ts";

// Fashion-MNIST's train split is 60,000 images in 10 balanced classes; so is this one.
const LABELS = Uint8Array.from({ length: 60000 }, (_, i) => (i * 7) % 10);

function score(latent: number, candidate: number, validationAcc: number): CandidateScore {
  return {
    latent,
    candidate,
    seed: 1 + candidate,
    validationAcc,
    validationCount: VALIDATION_COUNT,
    selectSamples: SELECT_SAMPLES,
    trainSeconds: 1,
    cached: false,
    checkpoint: `vae-${candidate}.bin`,
  };
}

test("--vae-candidates 1 leaves the config, its hash, the plan and every subset as before", () => {
  const before = configFromFlags({ quick: true, latents: "2,4" });
  const k1 = configFromFlags({ quick: true, latents: "2,4", "vae-candidates": 1 });
  assert.deepEqual(k1, before);
  assert.equal("vaeCandidates" in k1, false);
  assert.equal(resultsHash(k1), resultsHash(before));
  assert.deepEqual(
    planJobs(k1, emptyResults(k1, "h")),
    planJobs(before, emptyResults(before, "h")),
  );
  assert.equal(validationIndices(k1, 60000).length, 0);
  for (const n of [100, 1000, 60000]) {
    assert.deepEqual(labelledIndices(k1, LABELS, n, 1000), stratifiedIndices(LABELS, n, 1000));
  }
  assert.deepEqual(configFromFlags({ "vae-candidates": 1 }).samples.at(-1), 60000);
});

test("with candidates, no labelled subset of any cell, seed or the selection head holds a validation image", () => {
  const cfg = configFromFlags({ "vae-candidates": 3 });
  const val = validationIndices(cfg, LABELS.length);
  assert.equal(val.length, VALIDATION_COUNT);
  assert.equal(new Set(val).size, VALIDATION_COUNT);
  assert.deepEqual(validationIndices(cfg, LABELS.length), val, "the split is fixed");
  const held = new Set(val);
  assert.equal(labelledPool(cfg, LABELS.length).length, 60000 - VALIDATION_COUNT);
  const subsets = [selectionIndices(cfg, LABELS)];
  for (const n of cfg.samples) {
    for (let s = 0; s < 3; s++) subsets.push(labelledIndices(cfg, LABELS, n, cfg.dataSeed + s));
  }
  for (const idx of subsets) {
    assert.equal(idx.filter((i) => held.has(i)).length, 0);
    assert.equal(new Set(idx).size, idx.length);
  }
  // The largest default row takes every non-validation image: none is left over.
  assert.equal(Math.max(...cfg.samples), 50000);
  assert.equal(new Set([...labelledIndices(cfg, LABELS, 55000, 1), ...val]).size, 60000);
  // Still stratified: each class gets a tenth.
  const counts = new Array(10).fill(0);
  for (const i of labelledIndices(cfg, LABELS, 2000, 1000)) counts[LABELS[i]]++;
  assert.deepEqual(counts, new Array(10).fill(200));
});

test("with candidates, 60,000 labelled samples are refused: 5,000 are held out", () => {
  assert.throws(
    () => configFromFlags({ "vae-candidates": 2, samples: "1000,60000" }),
    (e: Error) => e instanceof FlagError && /60000 exceed the 55000/.test(e.message),
  );
  assert.deepEqual(configFromFlags({ "vae-candidates": 2, samples: "55000" }).samples, [55000]);
});

test("the candidate with the higher validation accuracy is picked, once all are scored", () => {
  const sel: Record<string, VaeSelection> = {};
  assert.equal(recordCandidate(sel, score(4, 1, 0.74), 2).picked, null);
  assert.equal(recordCandidate(sel, score(4, 0, 0.71), 2).picked, 1);
  assert.deepEqual(sel[4].candidates.map((c) => c.candidate), [0, 1]);
  // A re-scored candidate replaces its old score.
  assert.equal(recordCandidate(sel, score(4, 0, 0.76), 2).picked, 0);
  assert.equal(sel[4].candidates.length, 2);
  // Ties go to the lower index.
  const tie: Record<string, VaeSelection> = {};
  recordCandidate(tie, score(2, 1, 0.5), 2);
  assert.equal(recordCandidate(tie, score(2, 0, 0.5), 2).picked, 0);
});

test("each latent job waits for its candidate jobs and runs on the picked one", () => {
  const cfg = configFromFlags({ quick: true, latents: "4", "vae-candidates": 2, cnn: false });
  const r = emptyResults(cfg, resultsHash(cfg));
  const jobs = planJobs(cfg, r);
  assert.deepEqual(jobs.map((j) => j.id), [
    "vae L=4 candidate 0",
    "vae L=4 candidate 1",
    "vae L=4",
    "heads L=4 part 2",
  ]);
  const latent = jobs[2] as LatentJob;
  const part2 = jobs[3] as LatentJob;
  for (const j of [latent, part2]) {
    assert.deepEqual(j.after, ["vae L=4 candidate 0", "vae L=4 candidate 1"]);
  }
  // The picked VAE's cells are dealt over the two workers, each cell once, figures in part 1.
  const keys = [...latent.cells, ...part2.cells].map((c) => c.key).sort();
  const unsplit = planJobs({ ...cfg, vaeCandidates: undefined }, r)[0] as LatentJob;
  assert.deepEqual(keys, unsplit.cells.map((c) => c.key).sort());
  // The logistic and MLP cells are halved; the few-label cells (one kNN graph) stay in part 1.
  const fewIn = (j: LatentJob) => j.cells.filter((c) => isFewLabel(c.classifier)).length;
  assert.equal(latent.cells.length - fewIn(latent), 4);
  assert.equal(part2.cells.length, 4);
  assert.equal(fewIn(part2), 0);
  assert.ok(fewIn(latent) > 0, "the quick config has few-label cells");
  assert.equal(part2.scatter || part2.recon, false);
  // Scheduled: the latent jobs (cheap here) start only after both candidates end.
  const cost = (j: Job) => (j.kind === "candidate" ? 10 + j.candidate : 1);
  const s = schedule(jobs, 2, cost);
  assert.equal(s.order.find((o) => o.job.id === "vae L=4")!.start, 11);
  assert.equal(s.order.find((o) => o.job.id === "heads L=4 part 2")!.start, 11);
  assert.equal(s.wallSeconds, 12);

  const failures: Error[] = [];
  const fail = (e: Error) => failures.push(e);
  const queue = [latent];
  const ended = new Set(["vae L=4 candidate 0"]);
  assert.equal(takeReady(cfg, r, queue, ended, true, fail), null);
  assert.equal(queue.length, 1);
  assert.equal(takeReady(cfg, r, queue, ended, false, fail), null);
  assert.match(failures[0].message, /never ran: vae L=4/);
  ended.add("vae L=4 candidate 1");
  // Both ended but no score recorded: refused, not run on a default VAE.
  assert.equal(takeReady(cfg, r, queue, ended, true, fail), null);
  assert.match(failures[1].message, /no VAE candidate picked for latent 4/);
  r.vaeSelection = {};
  recordCandidate(r.vaeSelection, score(4, 0, 0.6), 2);
  recordCandidate(r.vaeSelection, score(4, 1, 0.7), 2);
  const job = takeReady(cfg, r, queue, ended, true, fail) as LatentJob;
  assert.equal(job.candidate, 1);
  assert.equal(queue.length, 0);
  // A resumed run re-plans only the candidates not scored yet.
  const resumed = emptyResults(cfg, resultsHash(cfg));
  resumed.vaeSelection = {};
  recordCandidate(resumed.vaeSelection, score(4, 0, 0.6), 2);
  const again = planJobs(cfg, resumed);
  assert.deepEqual(again.map((j) => j.id), [
    "vae L=4 candidate 1",
    "vae L=4",
    "heads L=4 part 2",
  ]);
  assert.deepEqual((again[1] as LatentJob).after, ["vae L=4 candidate 1"]);
});

test(
  "--quick --vae-candidates 2 picks the better-scored VAE, runs the cells on it and reports both",
  {
    timeout: 170_000,
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "select-test-"));
    try {
      const out = join(dir, "run");
      const args = ["--quick", "--out", out, "--cache-dir", join(dir, "cache"), "--latents", "4"];
      const more = ["--samples", "100", "--seeds", "1", "--no-cnn", "--vae-candidates", "2"];
      assert.equal(await main([...args, ...more]), 0);
      const r = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results;
      const sel = r.vaeSelection![4];
      assert.deepEqual(sel.candidates.map((c) => c.candidate), [0, 1]);
      const [a, b] = sel.candidates.map((c) => c.validationAcc);
      assert.ok(a !== b, "two seeds scored the same: the candidates did not differ");
      assert.equal(sel.picked, a > b ? 0 : 1);
      assert.equal(r.vaes[4].candidate, sel.picked);
      assert.notEqual(sel.candidates[0].checkpoint, sel.candidates[1].checkpoint);
      for (const c of sel.candidates) assert.equal(c.validationCount, VALIDATION_COUNT);
      // logistic, MLP and the two few-label heads, all on the picked VAE's latent.
      assert.deepEqual(
        Object.keys(r.cells).map((k) => k.split("/")[0]).sort(),
        ["knn", "logistic", "mlp", "spread"],
      );
      const report = readFileSync(join(out, "report.md"), "utf8");
      assert.match(report, /## VAE selection — 2 candidates per latent/);
      const picked = sel.candidates[sel.picked!];
      assert.match(
        report,
        new RegExp(
          `\\| 4 \\| ${picked.candidate} \\| ${picked.seed} \\| ${
            (picked.validationAcc * 100).toFixed(2)
          }% \\| [^|]+ \\| \\*\\*yes\\*\\* \\|`,
        ),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
