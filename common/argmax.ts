/** Index of the largest of `len` values of `a` starting at `from` (the first one on ties). */
export function argmax(a: ArrayLike<number>, from = 0, len = a.length - from): number {
  let best = 0;
  for (let i = 1; i < len; i++) if (a[from + i] > a[from + best]) best = i;
  return best;
}
