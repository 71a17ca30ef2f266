/**
 * Train / validation / test assignment by content hash. Identical files always land in the
 * same split (so a duplicate cannot leak a test image into training), the held-out draw is
 * stratified per class and seeded, and it depends on the images' contents, not on file names
 * or listing order. Evaluation splits keep one image per content, and none that training sees.
 */
import { mulberry32 } from "../../common/random.ts";
import { shuffle } from "../data.ts";

export type Role = "train" | "val" | "test";

export interface HeldOut {
  test: string[];
  val: string[];
}

export interface SplitInput {
  /** Content hash (hex) per image. */
  hashes: string[];
  labels: number[];
  /** The source's own split per image ("test" images are held out as given), or null. */
  given: ("train" | "test" | null)[];
  classes: number;
  testFraction: number;
  valFraction: number;
  seed: number;
  /** A previous run's held-out record: those contents are held out again. */
  heldOut?: HeldOut | null;
}

export interface SplitResult {
  /** Per image: its split, or null when it is left out (a duplicate kept out of evaluation). */
  role: (Role | null)[];
  /** Test images dropped because training holds the same content. */
  overlap: number;
  /** Contents listed under more than one class. */
  conflicting: number;
}

/** Per class, `fraction` of the unique contents (at least one when the class has two or more). */
function draw(byClass: Map<number, string[]>, fraction: number, seed: number): Set<string> {
  const out = new Set<string>();
  if (fraction <= 0) return out;
  for (const [k, hashes] of [...byClass].sort((a, b) => a[0] - b[0])) {
    const list = [...hashes].sort();
    shuffle(list, mulberry32(seed * 1000003 + k));
    const n = list.length < 2
      ? 0
      : Math.min(list.length - 1, Math.max(1, Math.round(fraction * list.length)));
    for (const h of list.slice(0, n)) out.add(h);
  }
  return out;
}

export function assignSplits(inp: SplitInput): SplitResult {
  const n = inp.hashes.length;
  const labelsOf = new Map<string, Set<number>>();
  inp.hashes.forEach((h, i) => {
    let s = labelsOf.get(h);
    if (!s) labelsOf.set(h, s = new Set());
    s.add(inp.labels[i]);
  });
  const conflict = new Set([...labelsOf].filter(([, s]) => s.size > 1).map(([h]) => h));
  const hasGivenTest = inp.given.some((g) => g === "test");
  const contentRole = new Map<string, Role>();
  if (inp.heldOut) {
    for (const h of inp.heldOut.test) contentRole.set(h, "test");
    for (const h of inp.heldOut.val) contentRole.set(h, "val");
  }
  // Unique contents per class among the candidates for each draw.
  const pool = (want: (i: number) => boolean) => {
    const m = new Map<number, string[]>();
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const h = inp.hashes[i];
      if (!want(i) || seen.has(h) || conflict.has(h) || contentRole.has(h)) continue;
      seen.add(h);
      if (!m.has(inp.labels[i])) m.set(inp.labels[i], []);
      m.get(inp.labels[i])!.push(h);
    }
    return m;
  };
  if (!inp.heldOut) {
    if (!hasGivenTest) {
      for (const h of draw(pool(() => true), inp.testFraction, inp.seed)) {
        contentRole.set(h, "test");
      }
    }
    const trainSide = (i: number) => inp.given[i] !== "test";
    for (const h of draw(pool(trainSide), inp.valFraction, inp.seed + 1)) contentRole.set(h, "val");
  }
  const role: (Role | null)[] = new Array(n).fill(null);
  const trainHashes = new Set<string>();
  for (let i = 0; i < n; i++) {
    const h = inp.hashes[i];
    const r = inp.given[i] === "test" && !inp.heldOut ? "test" : contentRole.get(h) ?? "train";
    if (r === "train") role[i] = "train", trainHashes.add(h);
  }
  let overlap = 0;
  const taken = new Set<string>();
  for (let i = 0; i < n; i++) {
    if (role[i] === "train") continue;
    const h = inp.hashes[i];
    const r = inp.given[i] === "test" && !inp.heldOut ? "test" : contentRole.get(h)!;
    if (trainHashes.has(h)) {
      if (r === "test") overlap++;
      continue;
    }
    if (conflict.has(h) || taken.has(h)) continue;
    taken.add(h);
    role[i] = r;
  }
  return { role, overlap, conflicting: conflict.size };
}
