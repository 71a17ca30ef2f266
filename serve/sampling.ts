/**
 * Seeded reparameterised sampling for /v1/latent?samples=k: z = mu + exp(logvar / 2) * eps with
 * eps ~ N(0, I) from a small seeded PRNG (mulberry32 + Box-Muller), so a client can reproduce
 * samples by sending the same seed. Sampling lives here, not in the exported model, which
 * stays deterministic (it outputs mu and logvar only).
 */

import { mulberry32 } from "../common/random.ts";

/** The seeded uniform PRNG (defined in common/random.ts), re-exported for callers here. */
export { mulberry32 };

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
