/**
 * The report's "beyond the study" section: the few-label heads of ./few_label.ts beside the
 * study's two heads on the same frozen latents and labelled subsets, against the few-label
 * targets (72% at 100 labels, 81% at 1,000), with how each head was set.
 */
import { DASH, fmt, testAcc } from "./format.ts";
import { cellsOf, type Results } from "./results.ts";

/** Test accuracy the few-label heads aim for, by labelled samples. */
export const FEW_LABEL_TARGETS: Record<number, number> = { 100: 0.72, 1000: 0.81 };

/** The section's lines, or none when the run has no few-label cells. */
export function fewLabelSection(r: Results): string[] {
  const rows = new Map<string, { latent: number; samples: number }>();
  for (const c of Object.values(r.cells)) {
    if ((c.classifier === "knn" || c.classifier === "spread") && c.latent !== null) {
      rows.set(`${c.latent}|${c.samples}`, { latent: c.latent, samples: c.samples });
    }
  }
  if (rows.size === 0) return [];
  const out = [
    `## Beyond the study — few-label heads on the frozen latents`,
    "",
    "Same VAEs, labelled subsets and test images as above. **kNN**: majority vote of the k nearest labelled latents, k by leave-one-out on the labelled set. **Label spreading** (Zhou et al. 2004): symmetric kNN affinity graph over the labelled and unlabelled training latents, labels spread to the fixed point of F = αSF + (1−α)Y, class-mass normalised; each test image takes the affinity-weighted scores of its nearest training nodes (test images are never graph nodes). Both use the active latent units, standardised on the unlabelled training latents; no setting was chosen on test accuracy.",
    "",
    `| latent | samples | VAE + logistic | VAE + MLP | kNN (labels only) | label spreading | target |`,
    `|---|---|---|---|---|---|---|`,
  ];
  const sorted = [...rows.values()].sort((a, b) => a.latent - b.latent || a.samples - b.samples);
  for (const { latent, samples } of sorted) {
    const t = FEW_LABEL_TARGETS[samples];
    out.push(
      `| ${latent} | ${samples.toLocaleString("en")} | ${
        [
          testAcc(r, "logistic", latent, samples),
          testAcc(r, "mlp", latent, samples),
          testAcc(r, "knn", latent, samples),
          testAcc(r, "spread", latent, samples),
        ].map(fmt).join(" | ")
      } | ${t ? `≥ ${(t * 100).toFixed(0)}%` : DASH} |`,
    );
  }
  const notes = sorted.flatMap(({ latent, samples }) =>
    (["knn", "spread"] as const).flatMap((h) =>
      cellsOf(r, h, latent, samples).filter((c) => c.note).map((c) =>
        `${h} L=${latent} N=${samples} seed ${c.seed}: ${c.note}`
      )
    )
  );
  if (notes.length) {
    out.push(
      "",
      "<details><summary>How each head was set</summary>",
      "",
      ...notes.map((n) => `- ${n}`),
      "",
      "</details>",
    );
  }
  return [...out, ""];
}
