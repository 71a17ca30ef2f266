/**
 * The latent map a bundle may carry (role "latent-map"): 2-D coordinates of held-out images'
 * mu, for the demo page's scatter plot. A new mu is placed on the map as
 * point = components x (mu - mean). The trainer writes it (latentMap), the demo reads it
 * (validateLatentMap); this file is the format's one definition.
 */

export const LATENT_MAP_FILE = "latent-map.json";
export const LATENT_MAP_FORMAT = "latent-edge/latent-map@1";

/** latent-map.json as written by the trainer and read by the demo page. */
export interface LatentMap {
  format: string;
  method: string;
  mean: number[];
  components: number[][];
  points: number[][];
  labels: number[];
  source?: string;
}

/** Checks the shape the page relies on; a malformed file is the bundle's fault, not the client's. */
export function validateLatentMap(raw: unknown, latentSize: number, classes: number): LatentMap {
  const fail = (why: string): never => {
    throw new Error(`Cannot use ${LATENT_MAP_FILE}: ${why}`);
  };
  if (typeof raw !== "object" || raw === null) fail("it is not a JSON object");
  const m = raw as LatentMap;
  if (m.format !== LATENT_MAP_FORMAT) fail(`format is ${JSON.stringify(m.format)}`);
  const isNums = (a: unknown, n: number) =>
    Array.isArray(a) && a.length === n && a.every((x) => typeof x === "number" && isFinite(x));
  if (!isNums(m.mean, latentSize)) fail(`"mean" is not ${latentSize} numbers`);
  if (!Array.isArray(m.components) || m.components.length !== 2) fail('"components" is not 2 rows');
  if (!m.components.every((c) => isNums(c, latentSize))) {
    fail(`"components" rows are not ${latentSize} numbers`);
  }
  if (!Array.isArray(m.points) || !m.points.every((p) => isNums(p, 2))) {
    fail('"points" is not a list of [x, y]');
  }
  if (
    !Array.isArray(m.labels) || m.labels.length !== m.points.length ||
    !m.labels.every((k) => Number.isInteger(k) && k >= 0 && k < classes)
  ) fail(`"labels" is not one class index (0..${classes - 1}) per point`);
  return m;
}

/**
 * The 2-D coordinates of the demo page's latent map: mu itself when L = 2, otherwise its first
 * two principal components (power iteration on the L x L covariance; L is small).
 */
export function latentMap(
  mu: Float32Array,
  L: number,
  n: number,
): { method: string; mean: number[]; components: number[][]; points: number[][] } {
  const mean = new Array<number>(L).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < L; j++) mean[j] += mu[i * L + j] / n;
  let components: number[][];
  let method: string;
  if (L <= 2) {
    method = "mu";
    components = Array.from(
      { length: 2 },
      (_, r) => Array.from({ length: L }, (_, c) => (r === c ? 1 : 0)),
    );
  } else {
    method = "pca";
    const cov = Array.from({ length: L }, () => new Array<number>(L).fill(0));
    for (let i = 0; i < n; i++) {
      for (let a = 0; a < L; a++) {
        for (let b = 0; b < L; b++) {
          cov[a][b] += (mu[i * L + a] - mean[a]) * (mu[i * L + b] - mean[b]) / n;
        }
      }
    }
    components = [];
    for (let k = 0; k < 2; k++) {
      let v = Array.from({ length: L }, (_, i) => 1 + i * 0.01 * (k + 1)); // deterministic start
      for (let it = 0; it < 500; it++) {
        const w = cov.map((row) => row.reduce((s, x, j) => s + x * v[j], 0));
        const norm = Math.hypot(...w) || 1;
        v = w.map((x) => x / norm);
      }
      // Fix the sign so re-exports of similar models do not mirror the map.
      const big = v.reduce((m, x, i) => (Math.abs(x) > Math.abs(v[m]) ? i : m), 0);
      if (v[big] < 0) v = v.map((x) => -x);
      const lambda = v.reduce((s, x, a) => s + x * cov[a].reduce((t, y, b) => t + y * v[b], 0), 0);
      components.push(v);
      for (let a = 0; a < L; a++) for (let b = 0; b < L; b++) cov[a][b] -= lambda * v[a] * v[b];
    }
  }
  // Points use `mean` only for PCA: with mu itself the page shows raw latent coordinates.
  const centre = method === "pca" ? mean : new Array<number>(L).fill(0);
  const points: number[][] = [];
  for (let i = 0; i < n; i++) {
    points.push(
      components.map((c) => round4(c.reduce((s, x, j) => s + x * (mu[i * L + j] - centre[j]), 0))),
    );
  }
  return {
    method,
    mean: centre.map(round4),
    components: components.map((c) => c.map((x) => +x.toFixed(6))),
    points,
  };
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
