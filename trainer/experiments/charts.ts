/**
 * The report's figures, drawn from results.json alone: figure 1 (the 2-D latent, one colour per
 * class, label names in the legend) and figure 3 (test accuracy vs labelled samples on a log
 * axis, our classifiers solid with ± std bars, the study's points dashed) as vega-lite specs
 * rendered to SVG headlessly; figure 2 (test images over their reconstructions) as a PNG grid
 * through ../figures.ts. Label names come from the dataset's list, never retyped here.
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import { FASHION_LABELS, PIXELS } from "../../common/labels.ts";
import { normalizePixels } from "../../common/preprocess.ts";
import { gridPng } from "../figures.ts";
import { PAPER_TABLE2 } from "./paper.ts";
import { bestLatent } from "./report.ts";
import { cellsOf, type Classifier, type Results, summarise } from "./results.ts";
import { decodeBase64 } from "../../common/base64.ts";

export async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Figure 1; `labels` names the classes (the study's data, Fashion-MNIST, unless given). */
export function scatterSpec(
  s: NonNullable<Results["figures"]["scatter"]>,
  labels: readonly string[] = FASHION_LABELS,
): vl.TopLevelSpec {
  const values = s.x.map((x, i) => ({ z1: x, z2: s.y[i], class: labels[s.label[i]] }));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `Figure 1: ${
        values.length.toLocaleString("en")
      } training images in the ${s.latent}-D latent (mu)`,
      subtitle: "VAE trained without labels; colours are the true classes",
    },
    width: 560,
    height: 460,
    background: "white",
    data: { values },
    mark: { type: "circle", size: 9, opacity: 0.55 },
    encoding: {
      x: { field: "z1", type: "quantitative", title: "z1" },
      y: { field: "z2", type: "quantitative", title: "z2" },
      color: {
        field: "class",
        type: "nominal",
        title: "class",
        scale: { domain: [...labels], scheme: labels.length <= 10 ? "tableau10" : "category20" },
      },
    },
  };
}

// The legend's symbols cannot show a dash pattern, so the labels say it.
const OURS = "ours (solid)", STUDY = "study, 2019 (dashed)";

const SERIES: { classifier: Classifier; name: string; paper: "logistic" | "mlp" | "cnn" }[] = [
  { classifier: "logistic", name: "VAE + logistic", paper: "logistic" },
  { classifier: "mlp", name: "VAE + MLP (study: VAE + CNN)", paper: "mlp" },
  { classifier: "cnn", name: "pixel CNN", paper: "cnn" },
];

/** Our series at latent `latent` (null: the CNN) as chart rows, mean ± std over seeds. */
function ourRows(r: Results, classifier: Classifier, latent: number | null, name: string) {
  return r.config.samples.flatMap((n) => {
    const sum = summarise(cellsOf(r, classifier, latent, n), (c) => c.testAcc);
    return sum
      ? [{
        samples: n,
        accuracy: sum.mean,
        lo: sum.mean - sum.std,
        hi: sum.mean + sum.std,
        classifier: name,
        source: OURS,
      }]
      : [];
  });
}

/**
 * The chart's rows: for each series ours and the study's, plus our heads at our best Table 1
 * latent when that is not the study's (our lines only: the study has no numbers there).
 */
function accuracyRows(r: Results) {
  const L = r.config.table2Latent;
  const best = bestLatent(r);
  const extra = best !== null && best !== L &&
      r.config.samples.some((n) =>
        n !== r.config.table1Samples && cellsOf(r, "logistic", best, n).length > 0
      )
    ? [
      { classifier: "logistic" as Classifier, name: `VAE + logistic, our best latent ${best}` },
      { classifier: "mlp" as Classifier, name: `VAE + MLP, our best latent ${best}` },
    ]
    : [];
  const rows: Record<string, unknown>[] = extra.flatMap((s) =>
    ourRows(r, s.classifier, best, s.name)
  );
  for (const s of SERIES) {
    rows.push(...ourRows(r, s.classifier, s.classifier === "cnn" ? null : L, s.name));
    for (const p of PAPER_TABLE2) {
      const acc = p[s.paper];
      rows.push({
        samples: p.samples,
        accuracy: acc,
        lo: acc,
        hi: acc,
        classifier: s.name,
        source: STUDY,
      });
    }
  }
  return { rows, extra, best };
}

export function accuracySpec(r: Results): vl.TopLevelSpec {
  const L = r.config.table2Latent;
  const { rows, extra, best } = accuracyRows(r);
  const color = {
    field: "classifier",
    type: "nominal",
    title: "classifier",
    scale: {
      domain: [...SERIES.map((s) => s.name), ...extra.map((s) => s.name)],
      range: ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#b279a2"],
    },
    legend: { labelLimit: 320 },
  } as const;
  const x = {
    field: "samples",
    type: "quantitative",
    title: "labelled training samples (log scale)",
    scale: { type: "log" },
    axis: { values: [100, 1000, 10000, 60000] as number[], format: "," },
  } as const;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: `Figure 3: test accuracy vs labelled samples (latent ${L}${
        extra.length ? ` and ${best}` : ""
      })`,
      subtitle: `solid: ours (mean ± std over seeds), dashed: the study; scored on ${
        Object.values(r.cells)[0]?.testCount ?? "?"
      } test images`,
    },
    width: 560,
    height: 380,
    background: "white",
    data: { values: rows },
    layer: [
      {
        mark: { type: "line", point: true },
        encoding: {
          x,
          y: {
            field: "accuracy",
            type: "quantitative",
            title: "test accuracy",
            axis: { format: ".0%" },
            scale: { zero: false },
          },
          color,
          strokeDash: {
            field: "source",
            type: "nominal",
            title: "source",
            scale: { domain: [OURS, STUDY], range: [[1, 0], [6, 4]] },
            legend: { labelLimit: 320 },
          },
          detail: { field: "source", type: "nominal" },
        },
      },
      {
        transform: [{ filter: { field: "source", equal: OURS } }],
        mark: { type: "rule" },
        encoding: { x, y: { field: "lo", type: "quantitative" }, y2: { field: "hi" }, color },
      },
    ],
  };
}

/**
 * Figure 2: the first 10 test images, then one row of reconstructions (decoded mu) per latent
 * size present, in increasing latent order. Returns the PNG and the latents shown.
 */
export function reconPng(r: Results): { png: Uint8Array; latents: number[] } | null {
  if (!r.figures.testImages) return null;
  const latents = Object.keys(r.figures.recon).map(Number).sort((a, b) => a - b);
  const rows = [normalizePixels(decodeBase64(r.figures.testImages))];
  for (const L of latents) rows.push(normalizePixels(decodeBase64(r.figures.recon[L])));
  if (rows.some((row) => row.length !== 10 * PIXELS)) {
    throw new Error("Cannot draw figure 2: stored reconstructions are not 10 images of 28x28");
  }
  return { png: gridPng(rows, 10), latents };
}
