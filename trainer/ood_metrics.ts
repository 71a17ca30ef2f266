/**
 * Detection metrics for a novelty score where higher means "more novel": AUROC (the chance
 * that a random out-of-distribution image scores above a random in-distribution one, ties
 * counting half) and the false-positive rate at a given true-positive rate.
 */

/** Area under the ROC curve of `outScores` (positives) against `inScores` (negatives). */
export function auroc(inScores: ArrayLike<number>, outScores: ArrayLike<number>): number {
  const all = [
    ...Array.from(inScores, (v) => ({ v, pos: 0 })),
    ...Array.from(outScores, (v) => ({ v, pos: 1 })),
  ].sort((a, b) => a.v - b.v);
  // Mann-Whitney U with mid-ranks for ties.
  let rankSumPos = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j < all.length && all[j].v === all[i].v) j++;
    const midRank = (i + 1 + j) / 2;
    for (let t = i; t < j; t++) if (all[t].pos) rankSumPos += midRank;
    i = j;
  }
  const nP = outScores.length, nN = inScores.length;
  return (rankSumPos - (nP * (nP + 1)) / 2) / (nP * nN);
}

/**
 * Fraction of in-distribution images flagged when the threshold flags `tpr` of the
 * out-of-distribution ones (the largest threshold that does, images at it count as flagged).
 */
export function fprAtTpr(
  inScores: ArrayLike<number>,
  outScores: ArrayLike<number>,
  tpr = 0.95,
): number {
  const pos = Float64Array.from(outScores).sort();
  // Flag score >= t; t = the value leaving at least tpr of the positives at or above it.
  const t = pos[Math.max(0, Math.floor(pos.length * (1 - tpr) + 1e-9))];
  let fp = 0;
  for (let i = 0; i < inScores.length; i++) if (inScores[i] >= t) fp++;
  return fp / inScores.length;
}
