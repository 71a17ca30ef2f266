import assert from "node:assert/strict";
import { test } from "node:test";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { LOCK_DIR, type LockOwner, withRegistryLock } from "./registry_lock.ts";

/** A pid that was just used by a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ["--version"]);
  assert.ok(r.pid && r.pid > 0);
  return r.pid!;
}

async function leaveLock(modelDir: string, owner: Partial<LockOwner> | null, ageMs = 0) {
  const lock = join(modelDir, LOCK_DIR);
  await mkdir(lock, { recursive: true });
  if (owner) {
    const full: LockOwner = {
      pid: process.pid,
      host: hostname(),
      started: null,
      token: "abandoned",
      acquired: new Date().toISOString(),
      ...owner,
    };
    await writeFile(join(lock, "owner.json"), JSON.stringify(full));
  }
  if (ageMs > 0) {
    const then = new Date(Date.now() - ageMs);
    if (owner) await utimes(join(lock, "owner.json"), then, then);
    await utimes(lock, then, then);
  }
}

async function withModelDir(fn: (dir: string) => Promise<void>) {
  const root = await mkdtemp(join(tmpdir(), "registry-lock-"));
  try {
    await fn(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test("withRegistryLock() breaks at once a lock whose holder's pid is not running", async () => {
  await withModelDir(async (dir) => {
    const pid = deadPid();
    await leaveLock(dir, { pid });
    const t0 = Date.now();
    const notes = await withRegistryLock(dir, ({ cleaned }) => Promise.resolve(cleaned), 5_000);
    assert.ok(Date.now() - t0 < 1_000, `took ${Date.now() - t0} ms`);
    assert.match(notes.join("\n"), new RegExp(`broke \\.lock: pid ${pid} on .* is not running`));
    assert.deepEqual(await readdir(dir), [], "the lock is released and nothing is left");
  });
});

test("withRegistryLock() removes temporary entries left by dead writers and says so", async () => {
  await withModelDir(async (dir) => {
    await leaveLock(dir, { pid: deadPid() });
    const incoming = join(dir, ".incoming-v1.4242.deadbeef.tmp");
    await mkdir(incoming);
    await writeFile(join(incoming, "model.onnx"), new Uint8Array(1_500_000));
    await writeFile(join(dir, ".write.4242.cafebabe.tmp"), "v1\n");
    await mkdir(join(dir, "v1"));
    const notes = await withRegistryLock(dir, ({ cleaned }) => Promise.resolve(cleaned), 5_000);
    assert.equal(notes.length, 3, notes.join("\n"));
    assert.match(notes[1] + notes[2], /removed \.incoming-v1\.4242\.deadbeef\.tmp \(1\.5 MB\)/);
    assert.match(notes[1] + notes[2], /removed \.write\.4242\.cafebabe\.tmp/);
    assert.deepEqual(await readdir(dir), ["v1"], "versions are never touched");
  });
});

test("withRegistryLock() waits for a live holder and names it when the wait runs out", async () => {
  await withModelDir(async (dir) => {
    await leaveLock(dir, { pid: process.pid, token: "someone-else" });
    await assert.rejects(
      withRegistryLock(dir, () => Promise.resolve("never"), 300),
      new RegExp(`held by pid ${process.pid} on .*, which is still running`),
    );
  });
});

test("withRegistryLock() breaks a lock whose pid now belongs to another process", async () => {
  await withModelDir(async (dir) => {
    // This process is alive, but it did not start at tick 1: the pid was reused.
    await leaveLock(dir, { pid: process.pid, started: "1" });
    const notes = await withRegistryLock(dir, ({ cleaned }) => Promise.resolve(cleaned), 2_000);
    assert.match(notes[0], /is another process now \(the pid was reused\)/);
  });
});

test("withRegistryLock() breaks another host's lock once its lease expired, not before", async () => {
  await withModelDir(async (dir) => {
    await leaveLock(dir, { host: "elsewhere.example", pid: 1 });
    await assert.rejects(
      withRegistryLock(dir, () => Promise.resolve(0), 200),
      /held by pid 1 on elsewhere/,
    );
    await leaveLock(dir, { host: "elsewhere.example", pid: 1 }, 31_000);
    const notes = await withRegistryLock(dir, ({ cleaned }) => Promise.resolve(cleaned), 2_000);
    assert.match(notes[0], /pid 1 on elsewhere\.example has not renewed its lease for 31 s/);
  });
});

test("withRegistryLock() breaks an ownerless lock only after its grace period", async () => {
  await withModelDir(async (dir) => {
    await leaveLock(dir, null);
    await assert.rejects(withRegistryLock(dir, () => Promise.resolve(0), 200), /held by a writer/);
    await leaveLock(dir, null, 10_000);
    const notes = await withRegistryLock(dir, ({ cleaned }) => Promise.resolve(cleaned), 2_000);
    assert.match(notes[0], /it has no owner file/);
  });
});

test("withRegistryLock() serialises holders and renews the lease while held", async () => {
  await withModelDir(async (dir) => {
    const order: string[] = [];
    const hold = (id: string) =>
      withRegistryLock(dir, async () => {
        order.push(`${id}+`);
        await new Promise((r) => setTimeout(r, 60));
        order.push(`${id}-`);
      }, { waitMs: 5_000, renewMs: 10 });
    await Promise.all([hold("a"), hold("b"), hold("c")]);
    for (let i = 0; i < order.length; i += 2) {
      assert.equal(order[i].slice(0, 1), order[i + 1].slice(0, 1), order.join(" "));
    }
  });
});
