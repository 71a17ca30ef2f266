/** The benchmark scripts' tables: Markdown, so a run's output pastes into docs/ as it is. */

/** `head` and `rows` as a Markdown table, each column padded to its widest cell. */
export function markdownTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => "| " + r.map((c, i) => c.padEnd(widths[i])).join(" | ") + " |";
  return [line(head), "|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)]
    .join("\n");
}
