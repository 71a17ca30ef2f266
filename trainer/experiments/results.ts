/**
 * results.json: every number the experiment produced, with the config that produced it. Each
 * finished cell (one classifier trained on one labelled subset) is written as soon as it
 * arrives, atomically, so an interrupted run resumes where it stopped; the report and figures
 * are pure functions of this file. Also the cell keys and the mean/std summaries over seeds.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { ExperimentConfig } from "./config.ts";
import type { VaeSelection } from "./select.ts";

/** The study's heads and pixel CNN, then the few-label heads beyond it (./few_label.ts). */
export type Classifier = "logistic" | "mlp" | "cnn" | "knn" | "spread";

/** What to train: the classifier, the latent it reads (null for the pixel CNN), N and the subset. */
export interface CellSpec {
  key: string;
  classifier: Classifier;
  latent: number | null;
  samples: number;
  seed: number;
}

export interface CellResult extends CellSpec {
  trainAcc: number;
  testAcc: number;
  /** Images the train accuracy was measured on (all N, or the first trainAccMax for the CNN). */
  trainEvalCount: number;
  testCount: number;
  steps: number;
  seconds: number;
  /** How a few-label head was set (chosen k, graph size, iterations), for the report. */
  note?: string;
}

export interface VaeResult {
  latent: number;
  /** Seconds spent training in this run (0 when the cached VAE was loaded). */
  trainSeconds: number;
  cached: boolean;
  checkpoint: string;
  epochs: number;
  imagesPerSecond: number | null;
  testElbo: number;
  testRec: number;
  testKl: number;
  /** With --vae-candidates > 1: which candidate (./select.ts) this VAE is. */
  candidate?: number;
}

export interface JobTiming {
  id: string;
  worker: number;
  seconds: number;
}

export interface Results {
  format: "latent-edge-experiments/1";
  configHash: string;
  config: ExperimentConfig;
  machine: Record<string, unknown>;
  engine: string | null;
  data: { dir: string; fingerprint: Record<string, string> } | null;
  cells: Record<string, CellResult>;
  vaes: Record<string, VaeResult>;
  /** Figure 1's points and figure 2's reconstructions (uint8 pixels, base64), by latent. */
  figures: {
    scatter: { latent: number; x: number[]; y: number[]; label: number[] } | null;
    testImages: string | null;
    recon: Record<string, string>;
  };
  jobs: JobTiming[];
  estimate: { wallSeconds: number; cpuSeconds: number; jobs: number; calibration: unknown } | null;
  /** Wall seconds of each invocation (a resumed run appends). */
  sessions: { startedAt: string; seconds: number; finished: boolean }[];
  bestLatent: number | null;
  /** With --vae-candidates > 1, by latent: each candidate's validation score and the pick. */
  vaeSelection?: Record<string, VaeSelection>;
}

export function cellKey(
  classifier: Classifier,
  latent: number | null,
  samples: number,
  seed: number,
): string {
  return `${classifier}/${latent === null ? "pixels" : `L${latent}`}/N${samples}/s${seed}`;
}

export function emptyResults(cfg: ExperimentConfig, hash: string): Results {
  return {
    format: "latent-edge-experiments/1",
    configHash: hash,
    config: cfg,
    machine: {},
    engine: null,
    data: null,
    cells: {},
    vaes: {},
    figures: { scatter: null, testImages: null, recon: {} },
    jobs: [],
    estimate: null,
    sessions: [],
    bestLatent: null,
  };
}

/**
 * Loads a run's results.json to resume it, or starts empty. A file made under other settings
 * is refused: mixing its cells with new ones would put incomparable numbers in one table.
 */
export function loadResults(path: string, cfg: ExperimentConfig, hash: string): Results {
  if (!existsSync(path)) return emptyResults(cfg, hash);
  let r: Results;
  try {
    r = JSON.parse(readFileSync(path, "utf8")) as Results;
  } catch (e) {
    throw new Error(
      `Cannot resume from ${path}: it is not valid JSON (${
        (e as Error).message
      }); move it away to start afresh`,
    );
  }
  if (r.format !== "latent-edge-experiments/1") {
    throw new Error(`Cannot resume from ${path}: unknown format "${r.format}"`);
  }
  if (r.configHash !== hash) {
    throw new Error(
      `Cannot resume from ${path}: it was made with other settings (config hash ${r.configHash}, now ${hash}); ` +
        "use another --out, or the same --quick/--vae-epochs as before",
    );
  }
  // Row lists may grow between sessions; the stored config follows the latest invocation.
  r.config = cfg;
  return r;
}

export function saveResults(path: string, r: Results): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(r, null, 1));
  renameSync(tmp, path);
}

export interface Summary {
  mean: number;
  std: number;
  n: number;
}

/** Mean and sample standard deviation (0 for one value) of the given cells' accuracy. */
export function summarise(cells: CellResult[], pick: (c: CellResult) => number): Summary | null {
  if (cells.length === 0) return null;
  const v = cells.map(pick);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const std = v.length > 1
    ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1))
    : 0;
  return { mean, std, n: v.length };
}

/** The finished cells of one (classifier, latent, N) over all seeds. */
export function cellsOf(
  r: Results,
  classifier: Classifier,
  latent: number | null,
  samples: number,
): CellResult[] {
  return Object.values(r.cells).filter((c) =>
    c.classifier === classifier && c.latent === latent && c.samples === samples
  )
    .sort((a, b) => a.seed - b.seed);
}
