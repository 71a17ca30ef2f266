// The demo page's script (served as /demo/app.js). Plain browser JavaScript, no libraries:
// everything it shows comes from this server's API (/v1/models, /v1/classify, /v1/preprocess,
// /v1/reconstruct, /v1/decode, /v1/models/active/latent-map), so the page works offline.
// Images are shown as data: URLs of the PNG bytes the server returned, so an image's src
// changes exactly when its pixels do.

/** Class colours (Tableau 10): distinct on white and in the legend, bars and map alike. */
const COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#7f7f7f",
];
/** Colour of class k: Tableau 10 first, then hues spread by the golden angle for any K. */
function colorOf(k) {
  return k < COLORS.length ? COLORS[k] : `hsl(${(k * 137.508) % 360} 55% 48%)`;
}
const ACCEPTED = ["image/png", "image/jpeg"];
const NEIGHBOURS = 15;

const $ = (id) => document.getElementById(id);

const state = {
  labels: [],
  latentSize: 0,
  hasDecoder: false,
  /** latent-map.json of the active model, or null. */
  map: null,
  /** The analysed image's mu (array) or null. */
  mu: null,
  /** Ignore answers to requests made for an image the user has since replaced. */
  token: 0,
  /** Version of the model the page was set up for (see setUpModel). */
  version: null,
  objectUrl: null,
  mapScale: null,
};

// ---------------------------------------------------------------- helpers

/** fetch() that turns a non-2xx answer into an Error carrying the API's message. */
async function api(path, init) {
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new Error(`Cannot reach the server (${path}): ${e.message}`);
  }
  if (!res.ok) {
    let msg = `${path} answered ${res.status}`;
    try {
      const body = await res.json();
      if (body && body.error && body.error.message) msg = body.error.message;
    } catch { /* not JSON */ }
    throw new Error(msg);
  }
  return res;
}

function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

function showError(message) {
  const el = $("error");
  if (!message) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.textContent = message;
  el.hidden = false;
}

function setStatus(text) {
  $("status").textContent = text;
}

const fmt = (x, d = 2) => (x < 0 ? "−" : "") + Math.abs(x).toFixed(d);
const pct = (p) => (p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%";

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") Object.assign(e.style, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function svgEl(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// ---------------------------------------------------------------- model, samples, legend

async function loadModel() {
  const info = await (await api("/v1/models")).json();
  const a = info.active;
  state.labels = a.labels;
  state.latentSize = a.latentSize;
  state.hasDecoder = a.decoder;
  state.version = a.version;
  $("model-name").textContent = a.name;
  $("model-version").textContent = a.version;
  const acc = a.metrics && a.metrics.testAccuracy;
  $("model-accuracy").textContent = typeof acc === "number"
    ? `${(acc * 100).toFixed(1)}%${a.metrics.evaluatedOn ? ` (n=${a.metrics.evaluatedOn})` : ""}`
    : "not recorded";
  $("model-latent").textContent = String(a.latentSize);
  $("model-dataset").textContent = a.dataset ?? "its own images";
  if (!a.decoder) {
    $("recon-note").textContent = "This model was exported without a decoder: no reconstruction.";
  }
}

function renderBarsEmpty() {
  const ol = $("bars");
  ol.replaceChildren(...state.labels.map((name, k) =>
    el(
      "li",
      { "data-index": String(k) },
      el("span", { class: "name" }, name),
      el(
        "span",
        { class: "track", "aria-hidden": "true" },
        el("span", {
          class: "fill",
          style: { background: colorOf(k), display: "block" },
        }),
      ),
      el("span", { class: "pct" }, "–"),
    )
  ));
}

/**
 * The active bundle's own samples (GET /v1/models/active/samples); for a bundle without any,
 * the page's fallback Fashion-MNIST samples, but only those whose label the model has.
 */
async function sampleList() {
  const res = await fetch("/v1/models/active/samples");
  if (res.ok) {
    const body = await res.json();
    return body.samples.map((s) => ({ label: s.name, url: s.url }));
  }
  if (res.status !== 404) throw new Error(`samples: HTTP ${res.status}`);
  const list = await (await api("/demo/samples/samples.json")).json();
  return list
    .filter((s) => state.labels.includes(s.label))
    .map((s) => ({ label: s.label, url: `/demo/samples/${s.file}` }));
}

async function loadSamples() {
  let list;
  try {
    list = await sampleList();
  } catch {
    list = [];
  }
  if (list.length === 0) {
    $("samples").replaceChildren(el("li", {}, "This model carries no sample images."));
    return;
  }
  $("samples").replaceChildren(...list.map((s) => {
    const b = el(
      "button",
      { type: "button", "aria-pressed": "false", "aria-label": `Sample: ${s.label}` },
      el("img", { src: s.url, alt: "", width: "56", height: "56" }),
      el("span", { "aria-hidden": "true" }, s.label),
    );
    b.addEventListener("click", async () => {
      for (const o of $("samples").querySelectorAll("button")) {
        o.setAttribute("aria-pressed", "false");
      }
      b.setAttribute("aria-pressed", "true");
      try {
        const blob = await (await api(s.url)).blob();
        await analyse(blob, `sample ${s.label}`, s.label);
      } catch (e) {
        showError(e.message);
      }
    });
    return el("li", {}, b);
  }));
}

function renderLegend() {
  const items = state.labels.map((name, k) =>
    el(
      "li",
      {},
      el("span", { class: "sw", style: { background: colorOf(k) } }),
      name,
    )
  );
  items.push(
    el("li", { class: "key" }, el("span", { class: "mark" }), "your image (μ)"),
    el("li", { class: "key" }, el("span", { class: "mark diamond" }), "slider position"),
  );
  $("legend").replaceChildren(...items);
}

// ---------------------------------------------------------------- analysing an image

/** PNG/JPEG pass as they are; other image types the browser can decode are sent as PNG. */
async function asPngOrJpeg(blob) {
  if (ACCEPTED.includes(blob.type)) return blob;
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob);
  } catch {
    throw new Error(
      `Cannot read this file as an image (${blob.type || "unknown type"}); use a PNG or JPEG`,
    );
  }
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  return await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function analyse(input, what, truth) {
  const token = ++state.token;
  showError(null);
  setStatus(`Analysing ${what}…`);
  const label = $("pred-label");
  label.dataset.state = "busy";
  label.textContent = "Analysing…";
  $("pred-conf").textContent = "";
  let blob;
  try {
    blob = await asPngOrJpeg(input);
  } catch (e) {
    return fail(e, token);
  }
  if (state.objectUrl) URL.revokeObjectURL(state.objectUrl);
  state.objectUrl = URL.createObjectURL(blob);
  const orig = $("img-original");
  orig.classList.remove("px");
  orig.onload = () => orig.classList.toggle("px", orig.naturalWidth <= 64);
  orig.src = state.objectUrl;
  orig.alt = `Your image: ${what}`;
  orig.hidden = false;

  const post = (path) =>
    api(path, { method: "POST", headers: { "Content-Type": blob.type }, body: blob });
  try {
    const [classified, inputPng, reconPng] = await Promise.all([
      post("/v1/classify").then((r) => r.json()),
      post("/v1/preprocess").then((r) => r.blob()).then(blobToDataUrl),
      state.hasDecoder
        ? post("/v1/reconstruct").then((r) => r.blob()).then(blobToDataUrl)
        : Promise.resolve(null),
    ]);
    if (token !== state.token) return;
    // The server hot-swapped its model since the page loaded: show the new one's labels,
    // latent size and map before rendering its answer.
    if (classified.model.version !== state.version) await setUpModel();
    if (token !== state.token) return;
    const p = classified.predictions[0];
    renderPrediction(p, truth);
    const input28 = $("img-input");
    input28.src = inputPng;
    input28.alt = "The 28 by 28 image the model received";
    input28.hidden = false;
    const recon = $("img-recon");
    if (reconPng) {
      recon.src = reconPng;
      recon.alt = `Reconstruction of your image by the decoder (predicted ${p.label})`;
      recon.hidden = false;
    } else {
      recon.hidden = true;
    }
    renderLatent(p.latent.mu, p.latent.logvar);
    state.mu = p.latent.mu.slice();
    $("reset-mu").disabled = false;
    setSliders(state.mu);
    drawMap();
    void showSimilar(blob, token);
    setStatus(`${what}: ${p.label} (${pct(p.confidence)}), model ${classified.model.version}`);
  } catch (e) {
    fail(e, token);
  }
}

/** The gallery's nearest items to the analysed image (POST /v1/similar); a note when off. */
async function showSimilar(blob, token) {
  const list = $("similar"), note = $("similar-note");
  let r;
  try {
    r = await (await api("/v1/similar?k=10", {
      method: "POST",
      headers: { "Content-Type": blob.type },
      body: blob,
    })).json();
  } catch (e) {
    if (token !== state.token) return;
    list.replaceChildren();
    note.textContent = `No similar items: ${e.message}`;
    return;
  }
  if (token !== state.token) return;
  const g = r.gallery;
  note.textContent =
    `The ${r.results.length} nearest of ${g.items} gallery items (latent space ${r.latentSpace})` +
    (g.consistent
      ? "."
      : `; ${g.translated} translated and ${g.pending} pending while the gallery re-embeds.`);
  list.replaceChildren(...r.results.map((h) => {
    const label = h.metadata && typeof h.metadata === "object" && h.metadata.label !== undefined
      ? String(h.metadata.label)
      : h.id;
    return el(
      "li",
      { "data-id": h.id },
      el("img", {
        src: `/v1/gallery/items/${encodeURIComponent(h.id)}/image`,
        alt: `Gallery item ${h.id}`,
        width: "56",
        height: "56",
      }),
      el("span", {}, `${label} · ${h.distance.toFixed(2)}${h.translated ? " (translated)" : ""}`),
    );
  }));
}

function fail(e, token) {
  if (token !== state.token) return;
  const label = $("pred-label");
  label.dataset.state = "empty";
  label.textContent = "No prediction";
  showError(e.message);
  setStatus("");
}

function renderPrediction(p, truth) {
  const label = $("pred-label");
  label.dataset.state = "done";
  label.textContent = p.label;
  $("pred-conf").textContent = `${pct(p.confidence)} probability`;
  const t = $("truth");
  if (truth) {
    const ok = truth === p.label;
    t.hidden = false;
    t.className = ok ? "truth" : "truth wrong";
    t.textContent = ok
      ? `✓ Matches the dataset label (${truth})`
      : `✗ The dataset label is ${truth}`;
  } else {
    t.hidden = true;
  }
  renderNovelty(p.novelty);
  const items = $("bars").children;
  p.probabilities.forEach((prob, k) => {
    const li = items[k];
    li.classList.toggle("best", k === p.index);
    li.querySelector(".fill").style.width = `${Math.max(0, Math.min(1, prob)) * 100}%`;
    li.querySelector(".pct").textContent = pct(prob);
    li.setAttribute("aria-label", `${state.labels[k]}: ${pct(prob)}`);
  });
}

/** The novelty verdict: how unusual the image is next to the model's held-out training images. */
function renderNovelty(n) {
  const el = $("novelty");
  el.hidden = false;
  if (!n || !n.available) {
    el.className = "novelty";
    el.textContent = "Novelty: not calibrated for this model";
    return;
  }
  el.className = n.outOfDistribution ? "novelty ood" : "novelty";
  const where = `more unusual than ${n.percentile.toFixed(1)}% of held-out training images`;
  el.textContent = n.outOfDistribution
    ? `⚠ Unlike the training images (${where}): the label is unreliable`
    : `In distribution (${where})`;
}

function renderLatent(mu, logvar) {
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

function buildSliders() {
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

function currentZ() {
  return [...$("sliders").querySelectorAll("input")].map((i) => Number(i.value));
}

function setSliders(z) {
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
async function scheduleDecode() {
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

// ---------------------------------------------------------------- latent map

async function loadMap() {
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

function drawMap() {
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
  // Square scale over the points (2nd-98th percentile plus margin, so outliers do not shrink it).
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
  state.mapScale = { pad, size, x0, x1, y0, y1 };

  // grid and axes
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

  // points
  ctx.save();
  ctx.beginPath(), ctx.rect(pad, pad, size, size), ctx.clip();
  const r = Math.max(1.8, cssW / 220);
  ctx.globalAlpha = you ? 0.55 : 0.75;
  m.points.forEach((p, i) => {
    ctx.fillStyle = colorOf(m.labels[i]);
    ctx.beginPath();
    ctx.arc(sx(p[0]), sy(p[1]), r, 0, 2 * Math.PI);
    ctx.fill();
  });
  ctx.globalAlpha = 1;
  if (slider) {
    const px = clamp(sx(slider[0]), pad, pad + size), py = clamp(sy(slider[1]), pad, pad + size);
    ctx.save();
    ctx.translate(px, py);
    ctx.rotate(Math.PI / 4);
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = "#111";
    ctx.strokeRect(-6, -6, 12, 12);
    ctx.restore();
  }
  if (you) {
    const px = clamp(sx(you[0]), pad, pad + size), py = clamp(sy(you[1]), pad, pad + size);
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
  ctx.restore();
  describeMap(you);
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

function onMapClick(ev) {
  const s = state.mapScale;
  if (!state.map || !s || !state.hasDecoder) return;
  const rect = $("map").getBoundingClientRect();
  const px = ev.clientX - rect.left, py = ev.clientY - rect.top;
  const x = s.x0 + (px - s.pad) / s.size * (s.x1 - s.x0);
  const y = s.y1 - (py - s.pad) / s.size * (s.y1 - s.y0);
  setSliders(unproject([x, y]));
}

// ---------------------------------------------------------------- input wiring

function wireInputs() {
  $("file").addEventListener("change", (ev) => {
    const f = ev.target.files && ev.target.files[0];
    if (f) analyse(f, `file ${f.name}`);
  });
  const zone = $("dropzone");
  // Dropping anywhere is accepted, so a near miss does not navigate away to the file.
  globalThis.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    zone.classList.add("over");
  });
  globalThis.addEventListener("dragleave", (ev) => {
    if (!ev.relatedTarget) zone.classList.remove("over");
  });
  globalThis.addEventListener("drop", (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    const f = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
    if (f) analyse(f, `dropped ${f.name || "image"}`);
  });
  document.addEventListener("paste", (ev) => {
    const items = ev.clipboardData ? [...ev.clipboardData.items] : [];
    const item = items.find((i) => i.kind === "file" && i.type.startsWith("image/"));
    if (!item) return;
    ev.preventDefault();
    analyse(item.getAsFile(), "pasted image");
  });
  $("reset-mu").addEventListener("click", () => state.mu && setSliders(state.mu));
  $("reset-zero").addEventListener("click", () => setSliders(new Array(state.latentSize).fill(0)));
  $("map").addEventListener("click", onMapClick);
  new ResizeObserver(() => drawMap()).observe($("map"));
}

/** (Re)builds everything that depends on the active model. */
async function setUpModel(reload = true) {
  if (reload) await loadModel();
  state.mu = null;
  $("reset-mu").disabled = true;
  renderBarsEmpty();
  renderLegend();
  buildSliders();
  await loadMap();
  if (reload) await loadSamples();
  scheduleDecode();
}

async function main() {
  wireInputs();
  try {
    await loadModel();
  } catch (e) {
    showError(`The service has no model to demo: ${e.message}`);
    $("model-name").textContent = "none loaded";
    return;
  }
  await setUpModel(false);
  await loadSamples();
  document.body.dataset.ready = "true";
  setStatus("Ready: choose, drop or paste an image, or click a sample.");
}

main();
