/**
 * A per-model lock object with a lease on S3 (`<name>/.lock`), so publishers on many machines
 * do not interleave their CURRENT/HISTORY/prune steps. Acquiring writes `{owner, expires}`
 * create-only (If-None-Match: *) or replacing only an expired lease (If-Match its ETag); a
 * service that enforces conditional writes (AWS S3, MinIO, R2) then grants it to exactly one
 * writer. Because some S3-compatible servers (s3rver among them) ignore those headers, the
 * writer then waits `settleMs` and reads the lock back: only the owner it names proceeds.
 * The holder renews the lease while it works; a crashed holder's lock expires after `leaseMs`,
 * and `check()` (called before every write) fails once the lease is lost or taken over.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { S3Registry } from "./registry_s3.ts";

export interface LockOptions {
  /** How long a lock stays valid without renewal, ms (default 15000). */
  leaseMs?: number;
  /** Longest wait for another publisher's lock, ms (default 60000). */
  waitMs?: number;
  /** Pause between writing the lock and reading it back, ms (default 150). */
  settleMs?: number;
}

export const LOCK_OBJECT = ".lock";

interface LockBody {
  owner: string;
  host: string;
  pid: number;
  expires: number;
}

function parseLock(bytes: Uint8Array): LockBody | null {
  try {
    const b = JSON.parse(new TextDecoder().decode(bytes));
    return typeof b.owner === "string" && typeof b.expires === "number" ? b : null;
  } catch {
    return null; // unreadable: treated as expired, so a damaged lock cannot block forever
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Lease {
  rel: string;
  owner: string;
  leaseMs: number;
  settleMs: number;
  body(): string;
}

async function ownedBy(reg: S3Registry, rel: string, owner: string) {
  const back = await reg.get(rel);
  return back && parseLock(back.bytes)?.owner === owner ? back : null;
}

/** Waits for the lock and takes it; returns when the lease it wrote runs out. */
async function acquire(reg: S3Registry, lease: Lease, waitMs: number): Promise<number> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const cur = await reg.get(lease.rel);
    const held = cur ? parseLock(cur.bytes) : null;
    if (held && held.expires > Date.now()) {
      if (Date.now() > deadline) {
        throw new Error(
          `Cannot lock ${reg.where(lease.rel)}: held by ${held.host} pid ${held.pid} for ${
            Math.round((held.expires - Date.now()) / 1000)
          } s more (it expires by itself if that publisher died)`,
        );
      }
    } else {
      const start = Date.now();
      const cond = cur ? { ifMatch: cur.etag } : { ifNoneMatch: "*" as const };
      if ((await reg.put(lease.rel, lease.body(), cond)).ok) {
        await sleep(lease.settleMs);
        if (await ownedBy(reg, lease.rel, lease.owner)) return start + lease.leaseMs;
      }
      if (Date.now() > deadline) {
        throw new Error(`Cannot lock ${reg.where(lease.rel)}: other publishers kept taking it`);
      }
    }
    await sleep(100 + Math.random() * 100); // jitter, so waiting publishers do not collide again
  }
}

/** Runs fn holding `<name>/.lock`; fn gets `check`, which throws if the lease is no longer ours. */
export async function withS3Lock<T>(
  reg: S3Registry,
  name: string,
  fn: (check: () => Promise<void>) => Promise<T>,
  opts: LockOptions = {},
): Promise<T> {
  const owner = randomBytes(8).toString("hex");
  const leaseMs = opts.leaseMs ?? 15_000;
  const lease: Lease = {
    rel: `${name}/${LOCK_OBJECT}`,
    owner,
    leaseMs,
    settleMs: opts.settleMs ?? 150,
    body: () =>
      JSON.stringify({
        owner,
        host: hostname(),
        pid: Number(globalThis.process?.pid ?? 0),
        expires: Date.now() + leaseMs,
      }),
  };
  const where = reg.where(lease.rel);
  let expires = await acquire(reg, lease, opts.waitMs ?? 60_000);
  let lost: string | null = null;
  let renewing = false;
  const renew = setInterval(async () => {
    if (renewing) return;
    renewing = true;
    try {
      const t = Date.now();
      const back = await ownedBy(reg, lease.rel, owner);
      if (!back) lost = "another publisher took the lock over";
      else if ((await reg.put(lease.rel, lease.body(), { ifMatch: back.etag })).ok) {
        expires = t + leaseMs;
      }
    } catch {
      // retried at the next tick; check() refuses once the lease has run out
    } finally {
      renewing = false;
    }
  }, Math.max(50, leaseMs / 3));
  const check = async () => {
    if (lost !== null || Date.now() > expires - lease.settleMs) {
      throw new Error(
        `Lost the lock ${where} (${lost ?? "lease expired"}); nothing more was written`,
      );
    }
    if (!(await ownedBy(reg, lease.rel, owner))) {
      throw new Error(`Lost the lock ${where} to another publisher; nothing more was written`);
    }
  };
  try {
    return await fn(check);
  } finally {
    clearInterval(renew);
    if (await ownedBy(reg, lease.rel, owner).catch(() => null)) {
      await reg.delete([lease.rel]).catch(() => {});
    }
  }
}
