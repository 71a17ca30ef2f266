/** Comparison helpers shared by the engine's parity tests. */

/** max |a - b| / max |b| over one tensor (max |a - b| when b is all zero). */
export function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return s === 0 ? d : d / s;
}
