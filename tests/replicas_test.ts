/**
 * `--replicas`: one command starts several service processes on one port (serve/replicas.ts).
 * Real processes on loopback: both answer, a replica killed with SIGKILL is replaced, and the
 * replicas go away with their supervisor, even when it is killed with SIGKILL itself.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";
import { answeringPids, startServer } from "../testkit/server_process.ts";
import { waitFor } from "../testkit/wait.ts";

const alive = (pid: number) =>
  existsSync(`/proc/${pid}`) &&
  !Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]?.startsWith("Z");

Deno.test("--replicas 2: two processes answer on one port; a killed replica is replaced; replicas die with the supervisor", async () => {
  const sup = await startServer(
    ["--bundle", TINY_BUNDLE, "--backend", "native", "--replicas", "2"],
    {
      permissions: ["-A"],
    },
  );
  let stopped = false;
  try {
    let pids = new Set<number>();
    await waitFor(
      async () => (pids = await answeringPids(sup.url, 20)).size === 2,
      "both replicas to answer",
      20_000,
      50,
    );
    assert.ok(pids.has(sup.pid), "the supervisor serves too");
    const [child] = [...pids].filter((p) => p !== sup.pid);
    assert.ok(
      sup.log.some((l) => l.startsWith(`[replica ${child}] Listening on`)),
      sup.log.join("\n"),
    );

    // /metrics covers both replicas whichever answers: each sample names its replica, and the
    // classify counts add up to what was sent.
    const px = new Uint8Array(784).fill(9);
    for (let i = 0; i < 12; i++) {
      const r = await fetch(`http://127.0.0.1:${sup.port}/v1/classify`, {
        method: "POST",
        body: px,
        headers: { "Content-Type": "application/octet-stream", Connection: "close" },
      });
      assert.equal(r.status, 200);
      await r.body?.cancel();
    }
    for (let k = 0; k < 4; k++) {
      const text = await (await fetch(`http://127.0.0.1:${sup.port}/metrics`, {
        headers: { Connection: "close" },
      })).text();
      const ready = [...text.matchAll(/^model_ready\{replica="(\d+)"\} 1$/gm)].map((m) =>
        Number(m[1])
      );
      assert.deepEqual(ready.sort(), [...pids].sort(), text);
      const classified = [
        ...text.matchAll(
          /^http_requests_total\{replica="\d+",method="POST",route="\/v1\/classify",status="200"\} (\d+)$/gm,
        ),
      ]
        .reduce((n, m) => n + Number(m[1]), 0);
      assert.equal(classified, 12, text);
      assert.equal(text.match(/^# TYPE http_requests_total counter$/gm)?.length, 1);
    }

    Deno.kill(child, "SIGKILL");
    let replacement = 0;
    await waitFor(
      async () => {
        const now = await answeringPids(sup.url, 20);
        replacement = [...now].find((p) => p !== sup.pid && p !== child) ?? 0;
        return replacement !== 0;
      },
      "a new replica to answer",
      20_000,
      100,
    );
    assert.ok(
      sup.log.some((l) => l.includes(`replica ${child} exited (signal SIGKILL)`)),
      sup.log.join("\n"),
    );

    // SIGKILL gives the supervisor no chance to stop anyone: the replica notices its stdin close.
    Deno.kill(sup.pid, "SIGKILL");
    stopped = true;
    await waitFor(
      () => Promise.resolve(!alive(replacement)),
      "the orphaned replica to exit",
      15_000,
      50,
    );
  } finally {
    if (!stopped) await sup.stop();
  }
});

Deno.test("--replicas without --allow-run fails at start and says what is missing", async () => {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-net",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      new URL("../serve/main.ts", import.meta.url).pathname,
      "--bundle",
      TINY_BUNDLE,
      "--replicas",
      "2",
      "--port",
      "0",
    ],
    stdout: "piped",
    stderr: "piped",
  });
  const out = await cmd.output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /--replicas 2 .*needs --allow-run/);
});
