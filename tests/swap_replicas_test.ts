/**
 * Scale-out on loopback: two real server processes (serve/main.ts) on two ports share one
 * registry directory, and a third follows the same registry over HTTP (a static file server
 * in this test; --registry http://..., polled, files verified by sha256 into a cache dir).
 * After one publish, all three converge on the new version. Also checks the admin API of a
 * real process: 401 without a token, 403 with a wrong one, 200 with the right one, and the
 * token never appears in the log.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, normalize } from "node:path";
import {
  answeringPids,
  type ServerProcess as Proc,
  startServer,
} from "../testkit/server_process.ts";
import { FIXTURES, makeRegistry, MODEL, VERSIONS } from "../testkit/fixtures.ts";
import { ADMIN_TOKEN } from "../testkit/swap_service.ts";
import { waitFor } from "../testkit/wait.ts";
import { publish } from "../trainer/publish.ts";

/** serve/main.ts with all permissions, as a replica runs (env: e.g. ADMIN_TOKEN). */
const startReplica = (args: string[], env: Record<string, string> = {}) =>
  startServer(args, { permissions: ["-A"], env });

/** Serves `root` read-only over HTTP, as any static file server or object store would. */
function staticServer(root: string): { url: string; close: () => Promise<void> } {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = normalize(decodeURIComponent(new URL(req.url).pathname));
    if (path.includes("..")) return new Response("bad path", { status: 400 });
    try {
      return new Response(await readFile(join(root, path)));
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { url: `http://127.0.0.1:${server.addr.port}/`, close: () => server.shutdown() };
}

const activeVersion = async (p: Proc) => {
  const r = await fetch(`${p.url}/v1/models`);
  return r.status === 200 ? (await r.json()).active.version : null;
};

Deno.test("two replicas on one registry dir and one on its HTTP mirror converge on a new publish", async () => {
  const reg = await makeRegistry();
  const cache = await mkdtemp(join(tmpdir(), "swap-cache-"));
  const http = staticServer(reg.root);
  const replicas: Proc[] = [];
  try {
    replicas.push(
      ...(await Promise.all([
        startReplica(["--registry", reg.root, "--backend", "native", "--poll-ms", "1000"], {
          ADMIN_TOKEN,
        }),
        startReplica(["--registry", reg.root, "--backend", "native", "--poll-ms", "1000"]),
        startReplica([
          "--registry",
          http.url,
          "--model",
          MODEL,
          "--cache-dir",
          cache,
          "--backend",
          "native",
          "--poll-ms",
          "200",
        ]),
      ])),
    );
    for (const p of replicas) assert.equal(await activeVersion(p), VERSIONS[0]);

    const t0 = performance.now();
    await publish(FIXTURES[2], { registry: reg.root });
    const converged: number[] = [];
    await Promise.all(replicas.map(async (p, i) => {
      await waitFor(
        async () => (await activeVersion(p)) === VERSIONS[2],
        `replica ${i} to converge`,
        15_000,
        20,
      );
      converged[i] = performance.now() - t0;
    }));
    console.log(
      `  converged after publish: dir replicas ${converged[0].toFixed(0)} / ${
        converged[1].toFixed(0)
      } ms, HTTP replica ${converged[2].toFixed(0)} ms (poll 200 ms)`,
    );
    // The HTTP replica serves from its verified cache.
    const cached = JSON.parse(
      await readFile(join(cache, MODEL, VERSIONS[2], "manifest.json"), "utf8"),
    );
    assert.equal(cached.version, VERSIONS[2]);

    // Admin API on a real process.
    const [a, b] = replicas;
    const post = (p: Proc, auth?: string) =>
      fetch(`${p.url}/v1/admin/reload`, {
        method: "POST",
        headers: auth ? { Authorization: auth } : {},
      }).then(async (r) => ({ status: r.status, body: await r.json() }));
    assert.equal((await post(a)).status, 401);
    assert.equal((await post(a, "Bearer not-the-token-at-all")).status, 403);
    const ok = await post(a, `Bearer ${ADMIN_TOKEN}`);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.status, "unchanged");
    const off = await post(b, `Bearer ${ADMIN_TOKEN}`);
    assert.equal(off.status, 404);
    assert.equal(off.body.error.code, "admin_disabled");
    // Activate the first version through the admin API: CURRENT moves, so the others follow.
    const act = await fetch(`${a.url}/v1/admin/models/${VERSIONS[0]}/activate`, {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    assert.equal(act.status, 200, await act.clone().text());
    assert.equal((await act.json()).version, VERSIONS[0]);
    await Promise.all(
      replicas.map((p, i) =>
        waitFor(
          async () => (await activeVersion(p)) === VERSIONS[0],
          `replica ${i} to follow the activation`,
          15_000,
          20,
        )
      ),
    );
  } finally {
    for (const p of replicas) assert.equal(await p.stop(), 0);
    await http.close();
    await reg.cleanup();
    await rm(cache, { recursive: true, force: true });
  }
  assert.ok(
    !replicas.some((p) => p.log.some((l) => l.includes(ADMIN_TOKEN))),
    "the admin token was logged",
  );
});

Deno.test("--reuse-port: two replicas share one port, both answer, and a swap reaches both", async () => {
  const reg = await makeRegistry();
  const replicas: Proc[] = [];
  try {
    const args = [
      "--registry",
      reg.root,
      "--backend",
      "native",
      "--poll-ms",
      "200",
      "--reuse-port",
    ];
    replicas.push(await startReplica(args));
    const port = String(replicas[0].port);
    replicas.push(await startReplica([...args, "--port", port]));
    assert.equal(replicas[1].port, replicas[0].port);
    // Without the flag the port is taken.
    await assert.rejects(
      startReplica(["--registry", reg.root, "--backend", "native", "--port", port]),
      /in use|AddrInUse/i,
    );
    // The kernel spreads new connections over both: /healthz names the process that answered.
    const seen = await answeringPids(replicas[0].url, 60, 2);
    assert.deepEqual(
      [...seen].sort(),
      replicas.map((p) => p.pid).sort(),
      "both replicas should answer",
    );
    await publish(FIXTURES[1], { registry: reg.root });
    for (const p of replicas) {
      await waitFor(
        async () => (await activeVersion(p)) === VERSIONS[1],
        `replica ${p.pid} to swap`,
        15_000,
        20,
      );
    }
  } finally {
    for (const p of replicas) await p.stop();
    await reg.cleanup();
  }
});
