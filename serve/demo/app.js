// The demo page's script (served as /demo/app.js). Plain browser JavaScript, no libraries:
// everything it shows comes from this server's API (/v1/models, /v1/classify, /v1/preprocess,
// /v1/reconstruct, /v1/decode, /v1/models/active/latent-map), so the page works offline.
// Images are shown as data: URLs of the PNG bytes the server returned, so an image's src
// changes exactly when its pixels do.
// This module wires the page; its parts are ./page.js, ./latent.js and ./map.js.
import { buildSliders, renderLatent, scheduleDecode, setSliders } from "./latent.js";
import { drawMap, loadMap, onMapClick } from "./map.js";
import {
  $,
  ACCEPTED,
  api,
  blobToDataUrl,
  colorOf,
  el,
  pct,
  setStatus,
  showError,
  state,
} from "./page.js";

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
