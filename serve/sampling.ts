/**
 * Seeded reparameterised sampling for /v1/latent?samples=k: z = mu + exp(logvar / 2) * eps with
 * eps ~ N(0, I) from a small seeded PRNG (mulberry32 + Box-Muller), so a client can reproduce
 * samples by sending the same seed. Sampling lives here, not in the exported model, which
 * stays deterministic (it outputs mu and logvar only).
 */

/** mulberry32: a 32-bit seeded PRNG, uniform in [0, 1). Plenty for visualisation samples. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draws via Box-Muller (both values of each pair are used). */
export function normalSource(seed: number): () => number {
  const u = mulberry32(seed);
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u1 = 1 - u(); // (0, 1]: log() stays finite
    const u2 = u();
    const r = Math.sqrt(-2 * Math.log(u1));
    spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  };
}

/** k samples of z for one input: k arrays of L numbers. */
export function sampleLatent(
  mu: ArrayLike<number>,
  logvar: ArrayLike<number>,
  k: number,
  normal: () => number,
): number[][] {
  const out: number[][] = [];
  for (let s = 0; s < k; s++) {
    const z: number[] = [];
    for (let j = 0; j < mu.length; j++) z.push(mu[j] + Math.exp(0.5 * logvar[j]) * normal());
    out.push(z);
  }
  return out;
}
