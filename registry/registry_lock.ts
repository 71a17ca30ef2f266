/**
 * The registry's writer lock: `<registry>/<name>/.lock/` (mkdir is atomic) holding `owner.json`
 * with the holder's pid, host, process start time and a random token. A lock whose holder is
 * gone is broken at once instead of jamming every later publish: on the same host the holder is
 * gone when its pid is not running (or is a zombie, or is another process that reused the pid,
 * which the start time tells); from another host, when its lease (owner.json's mtime, refreshed
 * while the lock is held) has expired. Every temporary entry a writer makes (`.*.tmp` beside
 * the versions) is made while holding this lock, so whatever such entry the next holder finds
 * was left by a dead writer and is removed; the holder's callback is told what was cleaned.
 * Pure node:fs/promises, for Deno and Node.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";

export const LOCK_DIR = ".lock";
const OWNER_FILE = "owner.json";
/** Another host's lock whose lease was not renewed for this long is taken as abandoned. */
export const LEASE_MS = 30_000;
/**
 * A lock directory without owner.json for this long was left by a writer that died between
 * mkdir and writing its owner (a window of microseconds), so it is broken.
 */
const OWNERLESS_MS = 2_000;
/** Temporary entries: `.incoming-*`, `.write.*`, `.trash-*`, broken locks; all end in .tmp. */
const TEMP_ENTRY = /^\..+\.tmp$/;

export interface LockOwner {
  pid: number;
  host: string;
  /** Process start time (Linux /proc clock ticks) telling a reused pid apart; null elsewhere. */
  started: string | null;
  token: string;
  acquired: string;
}

/** What the lock holder found and removed before its callback ran, one sentence each. */
export interface HeldLock {
  cleaned: string[];
}

export interface LockOptions {
  /** Longest wait for a live holder, ms (default 30 s). */
  waitMs?: number;
  /** How often the lease is renewed while held, ms (default LEASE_MS / 4). */
  renewMs?: number;
}

/** A unique temporary entry name: `.<prefix>.<pid>.<random>.tmp`. */
export function tmpName(prefix: string): string {
  return `.${prefix}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
}

/** Field 22 of /proc/<pid>/stat (start time) and its state; null when /proc cannot say. */
async function procStat(pid: number): Promise<{ started: string; state: string } | "gone" | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, "utf8");
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") {
      return (await stat("/proc/self/stat").then(() => true, () => false)) ? "gone" : null;
    }
    return null;
  }
  // The command name (field 2) may hold spaces and parentheses: split after the last ")".
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: f[0], started: f[19] };
}

let selfStarted: Promise<string | null> | null = null;
function ownStartTime(): Promise<string | null> {
  return selfStarted ??= procStat(process.pid).then((s) => s && s !== "gone" ? s.started : null);
}

/** Why the lock's holder is known to be gone, or null while it may still be working. */
export async function deadHolder(owner: LockOwner | null, lockAgeMs: number, ownerAgeMs: number) {
  if (owner === null) {
    return lockAgeMs > OWNERLESS_MS ? `it has no owner file after ${lockAgeMs} ms` : null;
  }
  const who = `pid ${owner.pid} on ${owner.host}`;
  if (owner.host !== hostname()) {
    return ownerAgeMs > LEASE_MS
      ? `${who} has not renewed its lease for ${Math.round(ownerAgeMs / 1000)} s`
      : null;
  }
  const s = await procStat(owner.pid);
  if (s === "gone") return `${who} is not running`;
  if (s === null) {
    try {
      process.kill(owner.pid, 0);
      return null;
    } catch (e) {
      return (e as { code?: string }).code === "ESRCH" ? `${who} is not running` : null;
    }
  }
  if (s.state === "Z" || s.state === "X") return `${who} has exited`;
  if (owner.started !== null && s.started !== owner.started) {
    return `${who} is another process now (the pid was reused)`;
  }
  return null;
}

async function readOwner(lock: string): Promise<{ owner: LockOwner | null; ageMs: number }> {
  const path = join(lock, OWNER_FILE);
  try {
    const [text, st] = await Promise.all([readFile(path, "utf8"), stat(path)]);
    const o = JSON.parse(text);
    if (typeof o.pid === "number" && typeof o.host === "string" && typeof o.token === "string") {
      return { owner: o as LockOwner, ageMs: Date.now() - st.mtimeMs };
    }
  } catch {
    // missing or half-written: judged by the lock directory's age
  }
  return { owner: null, ageMs: 0 };
}

/**
 * Moves a dead holder's lock aside. The rename is checked afterwards: if the directory moved
 * was not the one judged dead (a live writer took the lock in between), it is put back. Not
 * airtight: if a third writer takes the lock in the moment before it is put back, two writers
 * hold it; that needs a dead holder and three writers racing within microseconds.
 */
async function breakLock(lock: string, judged: LockOwner | null): Promise<boolean> {
  const aside = join(lock, "..", tmpName("broken-lock"));
  try {
    await rename(lock, aside);
  } catch {
    return false; // someone else broke or released it first
  }
  const { owner } = await readOwner(aside);
  if ((owner?.token ?? null) !== (judged?.token ?? null)) {
    await rename(aside, lock).catch(() => {});
    return false;
  }
  await rm(aside, { recursive: true, force: true });
  return true;
}

function size(bytes: number): string {
  return bytes < 1e5 ? `${(bytes / 1e3).toFixed(1)} kB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

async function sizeOf(p: string): Promise<number> {
  const s = await stat(p).catch(() => null);
  if (!s) return 0;
  if (!s.isDirectory()) return s.size;
  let n = 0;
  for (const e of await readdir(p).catch(() => [])) n += await sizeOf(join(p, e));
  return n;
}

/** Removes every temporary entry in modelDir (only ever called while holding the lock). */
async function cleanTemp(modelDir: string): Promise<string[]> {
  const notes: string[] = [];
  for (const name of await readdir(modelDir).catch(() => [] as string[])) {
    if (!TEMP_ENTRY.test(name)) continue;
    const p = join(modelDir, name);
    const bytes = await sizeOf(p);
    await rm(p, { recursive: true, force: true });
    notes.push(`removed ${name} (${size(bytes)}) left by an interrupted writer`);
  }
  return notes;
}

async function acquire(
  lock: string,
  waitMs: number,
): Promise<{ owner: LockOwner; notes: string[] }> {
  const deadline = Date.now() + waitMs;
  const notes: string[] = [];
  for (;;) {
    try {
      await mkdir(lock);
      const owner: LockOwner = {
        pid: process.pid,
        host: hostname(),
        started: await ownStartTime(),
        token: randomBytes(8).toString("hex"),
        acquired: new Date().toISOString(),
      };
      await writeFile(join(lock, OWNER_FILE), JSON.stringify(owner) + "\n");
      return { owner, notes };
    } catch (e) {
      if ((e as { code?: string }).code !== "EEXIST") throw e;
    }
    const lockAge = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
    const { owner, ageMs } = await readOwner(lock);
    const dead = await deadHolder(owner, lockAge, ageMs);
    if (dead !== null) {
      if (await breakLock(lock, owner)) notes.push(`broke ${LOCK_DIR}: ${dead}`);
      continue;
    }
    if (Date.now() > deadline) {
      const who = owner ? `pid ${owner.pid} on ${owner.host} since ${owner.acquired}` : "a writer";
      throw new Error(
        `Cannot lock ${
          join(lock, "..")
        }: ${lock} is held by ${who}, which is still running (waited ${
          Math.round(waitMs / 1000)
        } s)`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Runs fn holding `<modelDir>/.lock`: breaks a dead holder's lock, waits up to `waitMs` for a
 * live one, removes temporary entries left by dead writers and tells fn what was cleaned.
 */
export async function withRegistryLock<T>(
  modelDir: string,
  fn: (held: HeldLock) => Promise<T>,
  opts: number | LockOptions = {},
): Promise<T> {
  const o = typeof opts === "number" ? { waitMs: opts } : opts;
  const lock = join(modelDir, LOCK_DIR);
  const { owner, notes } = await acquire(lock, o.waitMs ?? 30_000);
  const ownerFile = join(lock, OWNER_FILE);
  const renew = setInterval(() => {
    const now = new Date();
    utimes(ownerFile, now, now).catch(() => {});
  }, o.renewMs ?? LEASE_MS / 4);
  try {
    notes.push(...(await cleanTemp(modelDir)));
    return await fn({ cleaned: notes });
  } finally {
    clearInterval(renew);
    // Only our own lock is removed: a holder judged dead by mistake must not free another's.
    const { owner: now } = await readOwner(lock);
    if (now?.token === owner.token) await rm(lock, { recursive: true, force: true });
  }
}
