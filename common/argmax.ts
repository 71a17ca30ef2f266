/**
 * The index of the largest value in a row: how a probability row becomes a predicted label.
 * Ties go to the first (lowest) index, so every caller names the same label for a row.
 */

/** Index (0-based, within the row) of the largest of a[from], ..., a[from + len - 1]. */
export function argmax(a: ArrayLike<number>, from = 0, len = a.length - from): number {
  let best = 0;
  for (let i = 1; i < len; i++) if (a[from + i] > a[from + best]) best = i;
  return best;
}
