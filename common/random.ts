/**
 * The project's one seeded PRNG, shared by the trainer (trainer/data.ts `rng`: shuffles,
 * subsets, splits) and the service (serve/sampling.ts: /v1/latent samples, fuzz inputs). Pure:
 * no runtime imports, so both Node and Deno load it.
 */

/**
 * mulberry32: a small, fast 32-bit seeded PRNG, uniform in [0, 1). The same seed always gives
 * the same sequence, so runs and samples reproduce.
 */
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
