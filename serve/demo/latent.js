// The latent panel of the demo page (served as /demo/latent.js): the image's mu and
// log-variance as a table, one slider per latent dimension, and the decoded image of the
// sliders' latent (POST /v1/decode), re-requested as the sliders move.
import { drawMap } from "./map.js";
import { $, api, blobToDataUrl, el, fmt, showError, state, svgEl } from "./page.js";

export function renderLatent(mu, logvar) {
  const tbody = $("latent-table").tBodies[0];
  tbody.replaceChildren(...mu.map((m, i) =>
    el(
      "tr",
      {},
      el("td", {}, `z${i + 1}`),
      el("td", {}, fmt(m)),
      el("td", {}, Math.exp(logvar[i] / 2).toFixed(2)),
    )
  ));
  // Horizontal bars from 0 with a ±σ whisker; the axis covers every value shown.
  const svg = $("latent-chart");
  const n = mu.length, rowH = 24, padL = 30, padR = 14, W = 340, H = n * rowH + 26;
  const sig = logvar.map((lv) => Math.exp(lv / 2));
  const lim = Math.max(1, ...mu.map((m, i) => Math.abs(m) + sig[i]));
  const x = (v) => padL + (v + lim) / (2 * lim) * (W - padL - padR);
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const parts = [
    svgEl("line", { x1: x(0), x2: x(0), y1: 2, y2: H - 18, stroke: "#9aa0b0", "stroke-width": 1 }),
  ];
  for (const v of [-lim, 0, lim]) {
    const t = svgEl("text", {
      x: x(v),
      y: H - 4,
      "text-anchor": "middle",
      "font-size": 11,
      fill: "#5b6275",
    });
    t.textContent = fmt(v, 1);
    parts.push(t);
  }
  mu.forEach((m, i) => {
    const y = 6 + i * rowH;
    const label = svgEl("text", { x: 2, y: y + 12, "font-size": 12, fill: "#1b1f2a" });
    label.textContent = `z${i + 1}`;
    parts.push(
      label,
      svgEl("rect", {
        x: Math.min(x(0), x(m)),
        y,
        width: Math.max(1, Math.abs(x(m) - x(0))),
        height: 14,
        rx: 3,
        fill: m >= 0 ? "#2f5bd3" : "#e15759",
        opacity: 0.85,
      }),
      svgEl("line", {
        x1: x(m - sig[i]),
        x2: x(m + sig[i]),
        y1: y + 7,
        y2: y + 7,
        stroke: "#1b1f2a",
        "stroke-width": 1.5,
      }),
    );
  });
  svg.replaceChildren(...parts);
  svg.setAttribute(
    "aria-label",
    `Latent means: ${mu.map((m, i) => `z${i + 1} ${fmt(m)}`).join(", ")}`,
  );
}

// ---------------------------------------------------------------- latent sliders and decode

function sliderRange(v) {
  return Math.max(4, Math.ceil(Math.abs(v) + 0.5));
}

export function buildSliders() {
  const box = $("sliders");
  box.replaceChildren();
  for (let i = 0; i < state.latentSize; i++) {
    const id = `z-${i}`;
    const input = el("input", {
      type: "range",
      id,
      min: "-4",
      max: "4",
      step: "0.1",
      value: "0",
      "aria-label": `Latent dimension ${i + 1} (z${i + 1})`,
      "aria-describedby": "explore-note",
    });
    const out = el("output", { for: id }, fmt(0));
    input.addEventListener("input", () => {
      out.textContent = fmt(Number(input.value));
      scheduleDecode();
    });
    box.append(el(
      "div",
      { class: "slider" },
      el("label", { for: id }, `z${i + 1}`),
      input,
      out,
    ));
  }
  if (!state.hasDecoder) {
    for (const i of box.querySelectorAll("input")) i.disabled = true;
    $("decoded-caption").textContent = "This model has no decoder";
  }
}

export function currentZ() {
  return [...$("sliders").querySelectorAll("input")].map((i) => Number(i.value));
}

export function setSliders(z) {
  const inputs = $("sliders").querySelectorAll("input");
  z.forEach((v, i) => {
    const input = inputs[i];
    if (!input) return;
    const r = sliderRange(v);
    if (r > Number(input.max)) input.min = String(-r), input.max = String(r);
    input.value = String(Math.round(v * 10) / 10);
    input.nextElementSibling.textContent = fmt(Number(input.value));
  });
  scheduleDecode();
}

// One decode in flight at a time; moves made meanwhile are folded into one follow-up request.
let decoding = false, decodeAgain = false;
export async function scheduleDecode() {
  drawMap();
  if (!state.hasDecoder) return;
  if (decoding) {
    decodeAgain = true;
    return;
  }
  decoding = true;
  try {
    do {
      decodeAgain = false;
      const z = currentZ();
      const res = await api("/v1/decode", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ latent: z }),
      });
      const url = await blobToDataUrl(await res.blob());
      const img = $("img-decoded");
      img.src = url;
      img.hidden = false;
      const zs = z.map((v) => fmt(v, 1)).join(", ");
      img.alt = `Image decoded from z = (${zs})`;
      $("decoded-caption").textContent = `Decoded from z = (${zs})`;
    } while (decodeAgain);
  } catch (e) {
    showError(e.message);
  } finally {
    decoding = false;
  }
}
