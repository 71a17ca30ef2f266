/**
 * The registry's HISTORY file and atomic writes: `<name>/HISTORY` holds one JSON line per
 * change of what is served (publish, activate, promote, rollback, and the canary and shadow
 * records of registry/traffic.ts), which is how rollback knows the previous version. Every
 * file a reader can see is replaced by rename (writeFileAtomic), never written in place.
 * Shared by the file registry (registry_write.ts) and the S3 one (registry_s3_write.ts).
 */
import { open, readFile, rename, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { VERSION_ID } from "../bundle/mod.ts";
import { tmpName } from "./registry_lock.ts";

export const HISTORY_FILE = "HISTORY";
/** A version id or model name: one plain path segment (the bundle contract's id rule). */
export const SAFE_ID = VERSION_ID;

export interface HistoryEntry {
  version: string;
  /** ISO time of the activation. */
  time: string;
  /**
   * publish/activate/promote/rollback change CURRENT; canary/abort/shadow record traffic
   * changes (registry/traffic.ts) and leave the activation stack alone.
   */
  action: "publish" | "activate" | "promote" | "rollback" | "canary" | "abort" | "shadow";
  /** Why, when the writer said (an automatic canary abort names the bound that was passed). */
  reason?: string;
  /** Set when --force activated past the regression gate: the regressions it overrode. */
  forced?: string[];
}

const TRAFFIC_ACTIONS = new Set<HistoryEntry["action"]>(["canary", "abort", "shadow"]);

/** Writes `text` to `path` atomically: temp file in the same directory, fsync, rename. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const dir = resolve(path, "..");
  const tmp = join(dir, tmpName("write"));
  const fh = await open(tmp, "w");
  try {
    await fh.writeFile(text);
    await fh.sync(); // the rename must not become visible before the data it points to
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** The activation history, oldest first (empty when the file does not exist). */
export async function readHistory(modelDir: string): Promise<HistoryEntry[]> {
  return parseHistory(await readFile(join(modelDir, HISTORY_FILE), "utf8").catch(() => null));
}

/** Parses HISTORY's JSON lines (directory and S3 registries alike); foreign lines are skipped. */
export function parseHistory(text: string | null): HistoryEntry[] {
  const out: HistoryEntry[] = [];
  for (const line of (text ?? "").split("\n")) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line);
      if (typeof e.version === "string" && SAFE_ID.test(e.version)) out.push(e);
    } catch {
      // a hand-edited or foreign line: skip it rather than block every later publish
    }
  }
  return out;
}

/**
 * The activation stack implied by the history: publish/activate push, rollback pops; traffic
 * records are skipped. The top is the active version, the one below it is what `rollback`
 * re-activates.
 */
export function activationStack(history: readonly HistoryEntry[]): string[] {
  const stack: string[] = [];
  for (const e of history) {
    if (TRAFFIC_ACTIONS.has(e.action)) continue;
    if (e.action === "rollback") {
      stack.pop();
      if (stack[stack.length - 1] !== e.version) stack.push(e.version);
    } else if (stack[stack.length - 1] !== e.version) {
      stack.push(e.version);
    }
  }
  return stack;
}

/** Appends one entry to HISTORY (by rename); caller holds the lock. */
export async function appendHistory(modelDir: string, entry: HistoryEntry): Promise<void> {
  const history = await readHistory(modelDir);
  history.push(entry);
  // Bounded: rollback only ever needs the last few entries.
  const kept = history.slice(-200);
  await writeFileAtomic(
    join(modelDir, HISTORY_FILE),
    kept.map((e) => JSON.stringify(e)).join("\n") + "\n",
  );
}
