// The latent map of the demo page (served as /demo/map.js): the active bundle's latent-map.json
// drawn on a canvas (test images by class, the analysed image, the sliders' latent), a text
// description for screen readers, and clicks that decode the point clicked.
import { currentZ, setSliders } from "./latent.js";
import { $, api, colorOf, fmt, NEIGHBOURS, state } from "./page.js";

export async function loadMap() {
  try {
    state.map = await (await api("/v1/models/active/latent-map")).json();
  } catch (e) {
    state.map = null;
    $("map-note").textContent = `No latent map: ${e.message}`;
    $("map").setAttribute("aria-label", "No latent map for this model");
    return;
  }
  const m = state.map;
  const axis = m.method === "pca" ? "the first two principal components of μ" : "μ itself";
  $("map-note").textContent =
    `${m.points.length} test images placed by ${axis}, coloured by their true class. ` +
    "Click the map to decode that point.";
  drawMap();
}

/** mu -> map coordinates: components . (mu - mean). */
function project(z) {
  const m = state.map;
  return m.components.map((c) => c.reduce((s, w, j) => s + w * (z[j] - m.mean[j]), 0));
}

/** map coordinates -> the latent vector on the map's plane: mean + x c0 + y c1. */
function unproject(p) {
  const m = state.map;
  return m.mean.map((mj, j) => mj + p[0] * m.components[0][j] + p[1] * m.components[1][j]);
}

export function drawMap() {
  const canvas = $("map");
  const m = state.map;
  const cssW = canvas.clientWidth || 400;
  const dpr = globalThis.devicePixelRatio || 1;
  if (canvas.width !== Math.round(cssW * dpr)) {
    canvas.width = Math.round(cssW * dpr);
    canvas.height = Math.round(cssW * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssW);
  if (!m) return;
  const you = state.mu ? project(state.mu) : null;
  const slider = state.latentSize ? project(currentZ()) : null;
  const s = mapScale(m, cssW);
  state.mapScale = s;
  drawGrid(ctx, m, s);
  ctx.save();
  ctx.beginPath(), ctx.rect(s.pad, s.pad, s.size, s.size), ctx.clip();
  drawPoints(ctx, m, s, Math.max(1.8, cssW / 220), you ? 0.55 : 0.75);
  if (slider) drawSliderMark(ctx, s, slider);
  if (you) drawYouMark(ctx, s, you);
  ctx.restore();
  describeMap(you);
}

/**
 * A square scale over the points (2nd-98th percentile plus margin, so outliers do not shrink
 * it): the plot's padding and size in CSS pixels, its data bounds, and the data -> pixel maps.
 */
function mapScale(m, cssW) {
  const xs = m.points.map((p) => p[0]).sort((a, b) => a - b);
  const ys = m.points.map((p) => p[1]).sort((a, b) => a - b);
  const q = (a, f) => a[Math.min(a.length - 1, Math.max(0, Math.round(f * (a.length - 1))))];
  let x0 = q(xs, 0.01), x1 = q(xs, 0.99), y0 = q(ys, 0.01), y1 = q(ys, 0.99);
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const half = Math.max(x1 - x0, y1 - y0) / 2 * 1.15 || 1;
  x0 = cx - half, x1 = cx + half, y0 = cy - half, y1 = cy + half;
  const pad = 26, size = cssW - 2 * pad;
  const sx = (x) => pad + (x - x0) / (x1 - x0) * size;
  const sy = (y) => pad + (y1 - y) / (y1 - y0) * size;
  return { pad, size, x0, x1, y0, y1, sx, sy };
}

/** Grid lines with their values, and the axis names. */
function drawGrid(ctx, m, s) {
  const { pad, size, x0, x1, y0, y1, sx, sy } = s;
  ctx.strokeStyle = "#e6e8ef";
  ctx.lineWidth = 1;
  ctx.fillStyle = "#8a90a2";
  ctx.font = "10px system-ui, sans-serif";
  const step = niceStep((x1 - x0) / 6);
  for (let v = Math.ceil(x0 / step) * step; v <= x1; v += step) {
    ctx.beginPath(), ctx.moveTo(sx(v), pad), ctx.lineTo(sx(v), pad + size), ctx.stroke();
    ctx.textAlign = "center";
    ctx.fillText(fmt(v, step < 1 ? 1 : 0), sx(v), pad + size + 13);
  }
  for (let v = Math.ceil(y0 / step) * step; v <= y1; v += step) {
    ctx.beginPath(), ctx.moveTo(pad, sy(v)), ctx.lineTo(pad + size, sy(v)), ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(fmt(v, step < 1 ? 1 : 0), pad - 4, sy(v) + 3);
  }
  const [ax, ay] = m.method === "pca" ? ["PC1", "PC2"] : ["z1", "z2"];
  ctx.fillStyle = "#5b6275";
  ctx.font = "600 11px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.fillText(ax, pad + size, pad + size - 5);
  ctx.textAlign = "left";
  ctx.fillText(ay, pad + 5, pad + 11);
}

/** The map's test images as dots of their class colour. */
function drawPoints(ctx, m, s, r, alpha) {
  ctx.globalAlpha = alpha;
  m.points.forEach((p, i) => {
    ctx.fillStyle = colorOf(m.labels[i]);
    ctx.beginPath();
    ctx.arc(s.sx(p[0]), s.sy(p[1]), r, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.globalAlpha = 1;
}

/** Where the sliders' latent sits: a black diamond, held inside the plot. */
function drawSliderMark(ctx, s, slider) {
  const { pad, size } = s;
  const px = clamp(s.sx(slider[0]), pad, pad + size), py = clamp(s.sy(slider[1]), pad, pad + size);
  ctx.save();
  ctx.translate(px, py);
  ctx.rotate(Math.PI / 4);
  ctx.lineWidth = 2.5;
  ctx.strokeStyle = "#111";
  ctx.strokeRect(-6, -6, 12, 12);
  ctx.restore();
}

/** Where the analysed image sits: a white ring with a black centre, held inside the plot. */
function drawYouMark(ctx, s, you) {
  const { pad, size } = s;
  const px = clamp(s.sx(you[0]), pad, pad + size), py = clamp(s.sy(you[1]), pad, pad + size);
  ctx.beginPath();
  ctx.arc(px, py, 8, 0, 2 * Math.PI);
  ctx.fillStyle = "#fff";
  ctx.fill();
  ctx.lineWidth = 3;
  ctx.strokeStyle = "#111";
  ctx.stroke();
  ctx.beginPath();
  ctx.arc(px, py, 3, 0, 2 * Math.PI);
  ctx.fillStyle = "#111";
  ctx.fill();
}

function clamp(v, lo, hi) {
  return Math.min(hi, Math.max(lo, v));
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/** Text for screen readers and everyone: where the image sits and what is around it. */
function describeMap(you) {
  const m = state.map;
  const base = `Scatter of ${m.points.length} test images in the latent space, coloured by class`;
  const canvas = $("map");
  if (!you) {
    canvas.setAttribute("aria-label", base);
    $("map-summary").textContent = "";
    return;
  }
  const near = m.points
    .map((p, i) => [Math.hypot(p[0] - you[0], p[1] - you[1]), m.labels[i]])
    .sort((a, b) => a[0] - b[0])
    .slice(0, NEIGHBOURS);
  const counts = new Map();
  for (const [, k] of near) counts.set(k, (counts.get(k) || 0) + 1);
  const parts = [...counts.entries()].sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} ${state.labels[k]}`);
  const text = `Your image is at (${fmt(you[0])}, ${fmt(you[1])}). ` +
    `Its ${near.length} nearest test images: ${parts.join(", ")}.`;
  canvas.setAttribute("aria-label", `${base}. ${text}`);
  $("map-summary").textContent = text;
}

export function onMapClick(ev) {
  const s = state.mapScale;
  if (!state.map || !s || !state.hasDecoder) return;
  const rect = $("map").getBoundingClientRect();
  const px = ev.clientX - rect.left, py = ev.clientY - rect.top;
  const x = s.x0 + (px - s.pad) / s.size * (s.x1 - s.x0);
  const y = s.y1 - (py - s.pad) / s.size * (s.y1 - s.y0);
  setSliders(unproject([x, y]));
}
