/**
 * How the study report writes its numbers: percentages, mean ± std over seeds, differences to the
 * study in points, durations, and the test accuracy of a cell group (— where none is done yet).
 */
import { cellsOf, type Classifier, type Results, summarise, type Summary } from "./results.ts";

export const DASH = "—";

export function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

export function fmt(s: Summary | null): string {
  if (!s) return DASH;
  return s.n > 1 ? `${(s.mean * 100).toFixed(1)} ± ${(s.std * 100).toFixed(1)}%` : pct(s.mean);
}

/** Our mean minus the study's figure, in percentage points. */
export function delta(s: Summary | null, paper: number | undefined): string {
  if (!s || paper === undefined) return DASH;
  const d = (s.mean - paper) * 100;
  return `${d >= 0 ? "+" : "−"}${Math.abs(d).toFixed(1)}`;
}

export function seconds(s: number): string {
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(1)} min`;
  return `${(s / 3600).toFixed(2)} h`;
}

/** Test accuracy over the seeds of one cell group (classifier, latent, N). */
export function testAcc(
  r: Results,
  c: Classifier,
  latent: number | null,
  n: number,
): Summary | null {
  return summarise(cellsOf(r, c, latent, n), (x) => x.testAcc);
}
