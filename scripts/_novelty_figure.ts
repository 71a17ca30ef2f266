/**
 * The evaluation's figure: for each named score, one panel of step histograms (fraction of each
 * image set per bin, log-scaled score axis) of the in-distribution set against every
 * out-of-distribution set. Plain SVG, no dependencies.
 */
const COLORS = ["#1f77b4", "#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"];
const W = 760, H = 260, PAD = { l: 50, r: 170, t: 30, b: 40 }, BINS = 50;

function panel(sets: Record<string, Float64Array>, score: string, y0: number): string[] {
  const all = Object.values(sets).flatMap((s) => Array.from(s));
  const min = Math.min(...all);
  const shift = min < 1 ? 1 - min : 0; // log scale needs positive values
  const tx = (v: number) => Math.log10(v + shift);
  const lo = tx(min), hi = tx(Math.max(...all)) + 1e-9;
  const pw = W - PAD.l - PAD.r, ph = H - PAD.t - PAD.b;
  const hists = Object.values(sets).map((s) => {
    const h = new Array<number>(BINS).fill(0);
    for (const v of s) h[Math.min(BINS - 1, Math.floor(((tx(v) - lo) / (hi - lo)) * BINS))]++;
    return h.map((c) => c / s.length);
  });
  const top = Math.max(...hists.flat());
  const out = [
    `<g transform="translate(0,${y0})">`,
    `<text x="${PAD.l}" y="18" font-size="13" font-weight="bold">${score}</text>`,
    `<rect x="${PAD.l}" y="${PAD.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  ];
  hists.forEach((h, si) => {
    let d = `M${PAD.l},${PAD.t + ph}`;
    h.forEach((f, b) => {
      const x0 = PAD.l + (b / BINS) * pw, x1 = PAD.l + ((b + 1) / BINS) * pw;
      const y = PAD.t + ph - (f / top) * ph;
      d += ` L${x0.toFixed(1)},${y.toFixed(1)} L${x1.toFixed(1)},${y.toFixed(1)}`;
    });
    d += ` L${PAD.l + pw},${PAD.t + ph}`;
    out.push(
      `<path d="${d}" fill="none" stroke="${COLORS[si % COLORS.length]}" stroke-width="1.5"/>`,
    );
  });
  for (let i = 0; i <= 4; i++) {
    const t = lo + ((hi - lo) * i) / 4, x = PAD.l + (pw * i) / 4;
    const label = Math.pow(10, t) - shift;
    out.push(
      `<text x="${x}" y="${PAD.t + ph + 15}" font-size="10" text-anchor="middle">${+label
        .toPrecision(3)}</text>`,
    );
  }
  out.push(
    `<text x="${PAD.l + pw / 2}" y="${
      PAD.t + ph + 32
    }" font-size="11" text-anchor="middle">score (log scale${
      shift ? `, shifted by ${+shift.toPrecision(3)}` : ""
    })</text>`,
  );
  out.push(
    `<text x="14" y="${PAD.t + ph / 2}" font-size="11" transform="rotate(-90 14 ${
      PAD.t + ph / 2
    })" text-anchor="middle">fraction of set</text>`,
  );
  Object.keys(sets).forEach((name, si) => {
    const y = PAD.t + 12 + si * 16;
    out.push(
      `<line x1="${W - PAD.r + 10}" x2="${W - PAD.r + 30}" y1="${y - 4}" y2="${y - 4}" stroke="${
        COLORS[si % COLORS.length]
      }" stroke-width="2"/>`,
    );
    out.push(`<text x="${W - PAD.r + 35}" y="${y}" font-size="11">${name}</text>`);
  });
  out.push("</g>");
  return out;
}

/** sets: set name -> (score name -> scores); one panel per name in `scores`. */
export function histogramSvg(
  sets: Record<string, Record<string, Float64Array>>,
  scores: string[],
): string {
  const body = scores.flatMap((s, i) =>
    panel(Object.fromEntries(Object.entries(sets).map(([k, v]) => [k, v[s]])), s, i * H)
  );
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${
      H * scores.length
    }" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}
