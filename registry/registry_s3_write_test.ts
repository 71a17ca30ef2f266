import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { FIXTURES, VERSIONS } from "../testkit/fixtures.ts";
import { bundleAs, startS3 } from "../testkit/s3_server.ts";
import { s3ClientFromEnv } from "./registry_s3.ts";
import { isS3Registry, parseS3Url } from "./s3_location.ts";
import {
  activateVersionS3,
  pruneChoice,
  publishBundleS3,
  rollbackS3,
} from "./registry_s3_write.ts";
import { parseHistory } from "./history.ts";
import { verifyRemoteVersion } from "./s3_version.ts";
import { withS3Lock } from "./s3_lock.ts";

const NAME = "fashion-vae";
const FAST_LOCK = { leaseMs: 3000, settleMs: 20, waitMs: 20_000 };

Deno.test("parseS3Url() splits bucket and prefix and names what is wrong", () => {
  assert.deepEqual(parseS3Url("s3://models/prod/vae/"), { bucket: "models", prefix: "prod/vae" });
  assert.deepEqual(parseS3Url("s3://models"), { bucket: "models", prefix: "" });
  assert.ok(isS3Registry("S3://x") && !isS3Registry("models"));
  assert.throws(() => parseS3Url("s3://Bad_Bucket/x"), /not a valid bucket name/);
  assert.throws(() => parseS3Url("s3://models/a//b"), /empty or dot segments/);
  assert.throws(() => parseS3Url("s3:/models"), /not an s3:\/\/bucket/);
});

Deno.test("s3ClientFromEnv() uses path-style addressing for a custom endpoint only", async () => {
  const custom = s3ClientFromEnv({ AWS_ENDPOINT_URL: "http://127.0.0.1:9000" });
  const aws = s3ClientFromEnv({ AWS_REGION: "eu-west-1" });
  const off = s3ClientFromEnv({
    AWS_ENDPOINT_URL_S3: "http://x:1",
    AWS_S3_FORCE_PATH_STYLE: "false",
  });
  assert.equal(custom.config.forcePathStyle, true);
  assert.equal(await custom.config.region(), "us-east-1");
  assert.equal(aws.config.forcePathStyle, false);
  assert.equal(await aws.config.region(), "eu-west-1");
  assert.equal(off.config.forcePathStyle, false);
  for (const c of [custom, aws, off]) c.destroy();
});

Deno.test("pruneChoice() keeps the newest activations and never the active or previous one", () => {
  const h = ["a", "b", "c", "d"].map((version) => ({
    version,
    time: "",
    action: "publish" as const,
  }));
  assert.deepEqual(pruneChoice(["a", "b", "c", "d"], h, "d", 2), ["b", "a"]);
  // After a rollback to c, c is active and b is "previous": both stay, d and a go.
  const rolled = [...h, { version: "c", time: "", action: "rollback" as const }];
  assert.deepEqual(pruneChoice(["a", "b", "c", "d"], rolled, "c", 1), ["d", "a"]);
  assert.deepEqual(pruneChoice(["a", "b"], h, "b", 0), []);
  assert.deepEqual(parseHistory('{"version":"a","time":"t","action":"publish"}\nnot json\n'), [
    { version: "a", time: "t", action: "publish" },
  ]);
});

Deno.test("publishBundleS3() uploads, verifies, flips CURRENT last; rollback, activate and prune", async () => {
  const s3 = await startS3();
  try {
    const reg = s3.registry();
    const lines: string[] = [];
    const a = await publishBundleS3(reg, FIXTURES[0], {
      log: (l) => lines.push(l),
      lock: FAST_LOCK,
    });
    assert.equal(a.version, VERSIONS[0]);
    assert.equal(a.previous, null);
    assert.ok(a.copied);
    // manifest.json after every file, the lock before the check, CURRENT after it.
    const order = lines.map((l) => l.replace(/^verified \/.*/, "verified local"));
    assert.deepEqual(order, [
      "verified local",
      "uploaded model.onnx",
      "uploaded decoder.onnx",
      "uploaded latent-map.json",
      "uploaded manifest.json",
      "locked",
      "verified remote copy",
      "wrote CURRENT",
    ]);
    assert.equal(await reg.readCurrent(NAME), VERSIONS[0]);
    const b = await publishBundleS3(reg, FIXTURES[1], { lock: FAST_LOCK });
    assert.equal(b.previous, VERSIONS[0]);
    // Same version, same files: reused, not uploaded again.
    const again = await publishBundleS3(reg, FIXTURES[1], { lock: FAST_LOCK });
    assert.equal(again.copied, false);
    // Same version id, different files: refused, CURRENT untouched.
    const impostor = await bundleAs(FIXTURES[2], VERSIONS[1]);
    await assert.rejects(
      publishBundleS3(reg, impostor, { lock: FAST_LOCK }),
      /already holds that version with different files/,
    );
    await rm(impostor, { recursive: true });
    assert.equal(await reg.readCurrent(NAME), VERSIONS[1]);

    assert.deepEqual(await rollbackS3(reg, NAME, FAST_LOCK), {
      from: VERSIONS[1],
      to: VERSIONS[0],
    });
    assert.equal(await reg.readCurrent(NAME), VERSIONS[0]);
    await activateVersionS3(reg, NAME, VERSIONS[1], "activate", FAST_LOCK);
    const c = await publishBundleS3(reg, FIXTURES[2], { keep: 1, lock: FAST_LOCK });
    // keep 1: c is active, b previous (both protected); a is the one removed.
    assert.deepEqual(c.pruned, [VERSIONS[0]]);
    assert.deepEqual(
      (await reg.versions(NAME)).map((v) => v.version),
      [VERSIONS[1], VERSIONS[2]].sort(),
    );
    assert.equal((await reg.list(`${NAME}/${VERSIONS[0]}/`)).length, 0);
    assert.equal(await reg.get(`${NAME}/.lock`), null, "the lock is released");
  } finally {
    await s3.close();
  }
});

Deno.test("a corrupt or missing object makes the version unverifiable and activation refused", async () => {
  const s3 = await startS3();
  try {
    const reg = s3.registry();
    await publishBundleS3(reg, FIXTURES[0], { lock: FAST_LOCK });
    await publishBundleS3(reg, FIXTURES[1], { activate: false, lock: FAST_LOCK });
    const model = (await reg.get(`${NAME}/${VERSIONS[1]}/model.onnx`))!.bytes;
    const bad = model.slice();
    bad[100] ^= 0xff;
    await reg.put(`${NAME}/${VERSIONS[1]}/model.onnx`, bad);
    await assert.rejects(verifyRemoteVersion(reg, NAME, VERSIONS[1]), /model\.onnx: .*sha256/);
    await assert.rejects(
      activateVersionS3(reg, NAME, VERSIONS[1], "activate", FAST_LOCK),
      /sha256/,
    );
    await reg.delete([`${NAME}/${VERSIONS[1]}/decoder.onnx`]);
    await reg.put(`${NAME}/${VERSIONS[1]}/model.onnx`, model);
    await assert.rejects(verifyRemoteVersion(reg, NAME, VERSIONS[1]), /decoder\.onnx is missing/);
    assert.equal(await reg.readCurrent(NAME), VERSIONS[0]);
  } finally {
    await s3.close();
  }
});

Deno.test("concurrent publishers serialise on the lock: every publish is in HISTORY, CURRENT complete", async () => {
  const s3 = await startS3();
  try {
    const reg = s3.registry();
    const versions = [
      "20261201T000001Z-p1",
      "20261201T000002Z-p2",
      "20261201T000003Z-p3",
      "20261201T000004Z-p4",
    ];
    const dirs = await Promise.all(versions.map((v, i) => bundleAs(FIXTURES[i % 3], v)));
    // Separate clients, as separate machines would have.
    const results = await Promise.all(
      dirs.map((d) => publishBundleS3(s3.registry(), d, { lock: FAST_LOCK })),
    );
    const history = parseHistory(await reg.getText(`${NAME}/HISTORY`));
    assert.deepEqual(history.map((e) => e.version).sort(), versions);
    const current = await reg.readCurrent(NAME);
    assert.equal(current, history[history.length - 1].version, "CURRENT is the last publish");
    await verifyRemoteVersion(reg, NAME, current!);
    // Each saw the one before it as previous: no two held the lock at once.
    const previous = results.map((r) => r.previous).sort();
    assert.deepEqual(previous, [null, ...history.slice(0, -1).map((e) => e.version)].sort());
    for (const d of dirs) await rm(d, { recursive: true });
  } finally {
    await s3.close();
  }
});

Deno.test("withS3Lock() waits for a live lease and takes over an expired one", async () => {
  const s3 = await startS3();
  try {
    const reg = s3.registry();
    const dead = JSON.stringify({ owner: "crashed", host: "h", pid: 1, expires: Date.now() + 400 });
    await reg.put(`${NAME}/.lock`, dead);
    const t0 = Date.now();
    const got = await withS3Lock(reg, NAME, async (check) => {
      await check();
      return Date.now() - t0;
    }, FAST_LOCK);
    assert.ok(got >= 350, `took the crashed writer's lock only after its lease (${got} ms)`);
    await reg.put(
      `${NAME}/.lock`,
      JSON.stringify({ owner: "x", host: "h", pid: 1, expires: Date.now() + 60_000 }),
    );
    await assert.rejects(
      withS3Lock(reg, NAME, () => Promise.resolve(), { ...FAST_LOCK, waitMs: 300 }),
      /Cannot lock .*held by h pid 1/,
    );
    // A holder that loses its lease is stopped before its next write.
    await reg.delete([`${NAME}/.lock`]);
    await assert.rejects(
      withS3Lock(reg, NAME, async (check) => {
        await reg.put(
          `${NAME}/.lock`,
          JSON.stringify({ owner: "thief", host: "h", pid: 2, expires: Date.now() + 60_000 }),
        );
        await check();
      }, FAST_LOCK),
      /Lost the lock/,
    );
  } finally {
    await s3.close();
  }
});
