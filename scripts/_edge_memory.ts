/**
 * What scripts/bench_edge.ts reads about the edge process's memory after a swap: the line the
 * edge logs when a version starts serving (wasm heap, V8's JS heap and external memory, from
 * inside; serve/edge/wasm_heap.ts) and, from /proc, its RSS split by mapping (glibc malloc's brk
 * heap, other anonymous memory, file-backed pages), so a growth can be put on its owner.
 */
import { type EdgeProcess, parseMemoryLine, rssMiB } from "../testkit/edge_process.ts";

export interface MemoryRow {
  label: string;
  rss: number;
  wasm: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  brk: number;
  anon: number;
  file: number;
}

/** RSS of `pid` by kind of mapping, MiB (Linux /proc/<pid>/smaps). */
export function smapsMiB(pid: number): { brk: number; anon: number; file: number } {
  const kb = { brk: 0, anon: 0, file: 0 };
  let kind: keyof typeof kb = "anon";
  for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[1];
      kind = path === "[heap]" ? "brk" : path === "" || path.startsWith("[") ? "anon" : "file";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) kb[kind] += Number(rss[1]);
  }
  return { brk: kb.brk / 1024, anon: kb.anon / 1024, file: kb.file / 1024 };
}

/**
 * Waits for the edge to log the memory line of `version` (it logs once the old version is
 * retired, a little after the new one answers), then reads /proc.
 */
export async function memoryRow(
  label: string,
  edge: EdgeProcess,
  version: string,
  after = 0,
): Promise<MemoryRow> {
  const end = performance.now() + 30_000;
  let line: string | undefined;
  while (
    !(line = edge.logs.slice(after).findLast((l) =>
      l.startsWith("wasm heap ") && l.endsWith(`serving ${version}`)
    ))
  ) {
    if (performance.now() > end) throw new Error(`the edge logged no memory line for ${version}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const { wasm, heapUsed, heapTotal, external } = parseMemoryLine(line);
  return {
    label,
    rss: rssMiB(edge.pid),
    wasm,
    heapUsed,
    heapTotal,
    external,
    ...smapsMiB(edge.pid),
  };
}

/** The rows as an aligned text table. */
export function table(rows: MemoryRow[]): string {
  const cols = ["rss", "wasm", "heapUsed", "heapTotal", "external", "brk", "anon", "file"] as const;
  const head = ["", ...cols].map((c) => c.padStart(10)).join("");
  return [
    head,
    ...rows.map((r) =>
      r.label.padStart(10) + cols.map((c) => r[c].toFixed(1).padStart(10)).join("")
    ),
  ].join("\n");
}
