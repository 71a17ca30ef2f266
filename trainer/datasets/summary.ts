/**
 * The data summary printed before training: images per class and split, the image sizes,
 * colour modes and formats seen, duplicates, train/test overlap and unreadable files.
 */
import type { DataReport } from "./load.ts";
import type { Listing } from "./listing.ts";

const KIND_NAMES = { folder: "image folder", csv: "CSV listing", jsonl: "JSONL listing" };

/** "28x28 20, 64x48 3": the most frequent keys first, at most `max` of them. */
function top(counts: Record<string, number>, max = 5): string {
  const e = Object.entries(counts).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const shown = e.slice(0, max).map(([k, v]) => `${k} ${v}`).join(", ");
  return e.length > max ? `${shown} (+${e.length - max} more)` : shown || "none";
}

export function summaryTable(listing: Listing, r: DataReport, policy: string): string {
  const kind = KIND_NAMES[listing.kind as keyof typeof KIND_NAMES] ?? listing.kind;
  const width = Math.min(40, Math.max(5, ...listing.classNames.map((n) => n.length)));
  const cell = (s: string | number, w = 7) => String(s).padStart(w);
  const lines = [
    `data: ${listing.source} (${kind}, ${listing.classNames.length} classes, ` +
    `${r.listed} images listed)`,
    `  ${"class".padEnd(width)}${cell("train")}${cell("val")}${cell("test")}`,
  ];
  const sum = { train: 0, val: 0, test: 0 };
  listing.classNames.forEach((name, k) => {
    const c = r.perClass[k];
    sum.train += c.train, sum.val += c.val, sum.test += c.test;
    const shown = name.length > width ? name.slice(0, width - 1) + "…" : name;
    lines.push(`  ${shown.padEnd(width)}${cell(c.train)}${cell(c.val)}${cell(c.test)}`);
  });
  lines.push(`  ${"total".padEnd(width)}${cell(sum.train)}${cell(sum.val)}${cell(sum.test)}`);
  lines.push(
    `  sizes: ${top(r.sizes)}`,
    `  colour modes: ${top(r.modes)}; formats: ${top(r.formats)}`,
    `  duplicates by content: ${r.duplicates} (kept out of evaluation)` +
      (r.conflictingLabels ? `; ${r.conflictingLabels} content(s) under two classes` : ""),
    `  train/test overlap: ${r.trainTestOverlap} test image(s) dropped`,
    `  unreadable files: ${r.unreadable.length}${r.unreadable.length ? ` (${policy}ped)` : ""}` +
      (r.ignoredFiles ? `; ${r.ignoredFiles} other file(s) ignored` : ""),
    `  decoded ${r.decodedNow}, from cache ${r.fromCache}, in ${r.decodeSeconds.toFixed(2)} s`,
  );
  for (const u of r.unreadable.slice(0, 20)) lines.push(`    skipped ${u.where}: ${u.reason}`);
  return lines.join("\n");
}
