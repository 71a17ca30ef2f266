/**
 * The S3 registry end to end on loopback, against a real S3-compatible server (s3rver) started
 * here: two service processes (serve/main.ts --registry s3://...) on two ports follow one
 * bucket and both serve a newly published version within the poll interval + 1 s; a corrupt
 * object is rejected while the old version keeps serving; and publisher processes
 * (trainer/publish.ts) killed with SIGKILL at every step of a publish never leave CURRENT
 * naming a missing or partial version.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readLines } from "../common/lines.ts";
import { verifyRemoteVersion } from "../registry/s3_version.ts";
import { publishToS3 } from "../trainer/publish_s3.ts";
import { verifyWithOnnxRuntime } from "../trainer/publish.ts";
import { FIXTURES, MODEL, VERSIONS } from "../testkit/fixtures.ts";
import { bundleAs, startS3, type TestS3 } from "../testkit/s3_server.ts";
import { type ServerProcess, startServer } from "../testkit/server_process.ts";
import { waitFor } from "../testkit/wait.ts";

const POLL_MS = 500;
const PUBLISH = new URL("../trainer/publish.ts", import.meta.url).pathname;

const activeVersion = async (p: ServerProcess): Promise<string | null> => {
  const r = await fetch(`${p.url}/v1/models`);
  return r.status === 200 ? (await r.json()).active.version : (await r.body?.cancel(), null);
};

async function withReplicas(
  s3: TestS3,
  fn: (replicas: ServerProcess[]) => Promise<void>,
): Promise<void> {
  const caches = await Promise.all([0, 1].map(() => mkdtemp(join(tmpdir(), "s3-cache-"))));
  const url = `s3://${s3.bucket}/registry`;
  const replicas = await Promise.all(caches.map((cache) =>
    startServer(
      ["--backend", "native", "--poll-ms", String(POLL_MS), "--threads", "1"],
      // Flags from the environment, as the container and Kubernetes pass them.
      {
        permissions: ["-A"],
        env: { ...s3.env, MODEL_REGISTRY: url, MODEL_NAME: MODEL, CACHE_DIR: cache },
      },
    )
  ));
  try {
    await fn(replicas);
  } finally {
    await Promise.all(replicas.map((r) => r.stop()));
    for (const c of caches) await rm(c, { recursive: true, force: true });
  }
}

const publishOpts = (s3: TestS3) => ({
  keep: 0,
  verify: verifyWithOnnxRuntime,
  env: { ...s3.env, REGISTRY_LOCK_LEASE_MS: "2500" },
});

Deno.test("two services on one S3 bucket serve a new publish within poll + 1 s; a corrupt object is rejected", async () => {
  const s3 = await startS3();
  try {
    const url = `s3://${s3.bucket}/registry`;
    await publishToS3(url, FIXTURES[0], publishOpts(s3));
    await withReplicas(s3, async (replicas) => {
      for (const r of replicas) assert.equal(await activeVersion(r), VERSIONS[0], r.log.join("\n"));
      await publishToS3(url, FIXTURES[1], publishOpts(s3));
      const published = performance.now();
      const seen: number[] = [];
      await Promise.all(replicas.map(async (r) => {
        await waitFor(
          async () => (await activeVersion(r)) === VERSIONS[1],
          "new version",
          10_000,
          20,
        );
        seen.push(performance.now() - published);
      }));
      console.log(
        `S3 replicas serving the new version after ${seen.map(Math.round).join(", ")} ms`,
      );
      assert.ok(
        Math.max(...seen) <= POLL_MS + 1000,
        `both replicas serve ${VERSIONS[1]} within ${POLL_MS} + 1000 ms (took ${
          seen.map(Math.round)
        } ms)`,
      );

      // A foreign writer stores a damaged model and points CURRENT at it, bypassing the publisher.
      const reg = s3.registry();
      const bad = `${MODEL}/20261201T000000Z-corrupt`;
      for (const f of ["decoder.onnx", "latent-map.json"]) {
        await reg.put(`${bad}/${f}`, Deno.readFileSync(join(FIXTURES[2], f)));
      }
      const model = Deno.readFileSync(join(FIXTURES[2], "model.onnx"));
      model[model.length - 10] ^= 0xff;
      await reg.put(`${bad}/model.onnx`, model);
      const manifest = JSON.parse(Deno.readTextFileSync(join(FIXTURES[2], "manifest.json")));
      manifest.version = "20261201T000000Z-corrupt";
      await reg.put(`${bad}/manifest.json`, JSON.stringify(manifest));
      await reg.put(`${MODEL}/CURRENT`, "20261201T000000Z-corrupt\n");
      await Promise.all(replicas.map((r) =>
        waitFor(
          () => r.log.some((l) => /Rejected .*corrupt.*model\.onnx.*sha256/.test(l)),
          "the rejection in the log",
          10_000,
          20,
        )
      ));
      for (const r of replicas) {
        assert.equal(await activeVersion(r), VERSIONS[1], "the old version keeps serving");
        assert.equal((await fetch(`${r.url}/readyz`)).status, 200);
        const models = await (await fetch(`${r.url}/v1/models`)).json();
        assert.match(models.lastError.message, /model\.onnx: got \d+ bytes with sha256/);
      }
    });
  } finally {
    await s3.close();
  }
});

/** Runs the publisher CLI on `dir`; kills it (SIGKILL) `delayMs` after its `killAfter`-th line. */
async function killedPublish(s3: TestS3, dir: string, killAfter: number, delayMs: number) {
  const reg = `s3://${s3.bucket}/registry`;
  const child = new Deno.Command(Deno.execPath(), {
    // --force: the fixtures regress on one another, and the gate's steps are kill points too.
    args: ["run", "-A", PUBLISH, dir, "--registry", reg, "--keep", "3", "--force"],
    env: { ...s3.env, REGISTRY_LOCK_LEASE_MS: "2500" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  let killed = false;
  const onLine = (l: string) => {
    lines.push(l);
    if (lines.length === killAfter && !killed) {
      killed = true;
      setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* already exited */ }
      }, delayMs);
    }
  };
  await Promise.all([readLines(child.stdout, onLine), readLines(child.stderr, onLine)]);
  const status = await child.status;
  return { lines, killed: status.signal === "SIGKILL", code: status.code };
}

Deno.test("publishers killed at every step never leave CURRENT on a missing or partial version", async () => {
  const s3 = await startS3();
  const dirs: string[] = [];
  try {
    const reg = s3.registry();
    await publishToS3(`s3://${s3.bucket}/registry`, FIXTURES[0], publishOpts(s3));
    // Steps printed by a gated publish: verified, locked, downloaded, the gate, 4 uploads
    // (evaluation.json too), manifest, remote check, CURRENT.
    const trials = 12;
    let kills = 0;
    for (let i = 0; i < trials; i++) {
      const version = `20261201T0100${String(i).padStart(2, "0")}Z-kill`;
      const dir = await bundleAs(FIXTURES[i % 3], version);
      dirs.push(dir);
      const before = await reg.readCurrent(MODEL);
      const r = await killedPublish(s3, dir, 1 + (i % 8), Math.random() * 15);
      if (r.killed) kills++;
      else assert.equal(r.code, 0, `trial ${i} exited by itself: ${r.lines.join("\n")}`);
      const current = await reg.readCurrent(MODEL);
      assert.ok(current === before || current === version, `trial ${i}: CURRENT is ${current}`);
      // Complete and intact: its manifest and every object match.
      await verifyRemoteVersion(reg, MODEL, current!);
    }
    assert.ok(kills >= 10, `at least 10 of ${trials} publishers were killed mid-way (${kills})`);
    // A stale lock left by a killed publisher expires: the next publish goes through.
    const last = await bundleAs(FIXTURES[1], "20261201T020000Z-after");
    dirs.push(last);
    const r = await killedPublish(s3, last, Infinity, 0);
    assert.equal(r.code, 0, r.lines.join("\n"));
    assert.equal(await reg.readCurrent(MODEL), "20261201T020000Z-after");
  } finally {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    await s3.close();
  }
});
