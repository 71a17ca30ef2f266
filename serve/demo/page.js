// The demo page's shared parts: the page state, the API call, DOM helpers and formats, and the
// class colours (served as /demo/page.js; the page's modules import them from here).

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
export function colorOf(k) {
  return k < COLORS.length ? COLORS[k] : `hsl(${(k * 137.508) % 360} 55% 48%)`;
}
export const ACCEPTED = ["image/png", "image/jpeg"];
export const NEIGHBOURS = 15;

export const $ = (id) => document.getElementById(id);

export const state = {
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
export async function api(path, init) {
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

export function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

export function showError(message) {
  const el = $("error");
  if (!message) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.textContent = message;
  el.hidden = false;
}

export function setStatus(text) {
  $("status").textContent = text;
}

export const fmt = (x, d = 2) => (x < 0 ? "−" : "") + Math.abs(x).toFixed(d);
export const pct = (p) => (p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%";

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "style") Object.assign(e.style, v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

export function svgEl(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}
