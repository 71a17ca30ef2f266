/**
 * Every error the app produces has the README's one shape, {"error": {"code", "message"}} and
 * nothing else: the model routes, unknown routes, readiness, and every admin answer (401, 403,
 * 404 unknown version, 409 read-only registry, 422 rejected bundle, 429 throttled). Also: wrong
 * admin tokens are throttled per client and logged, without the token.
 */
import assert from "node:assert/strict";
import { cp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FailureThrottle } from "../serve/auth_throttle.ts";
import { createApp } from "../serve/app.ts";
import { defaultConfig } from "../serve/config.ts";
import { loadModel, ModelSlot } from "../serve/inference/mod.ts";
import { BundleSource } from "../serve/registry_source.ts";
import { Reloader } from "../serve/reload.ts";
import { FIXTURES, makeRegistry, MODEL } from "../testkit/fixtures.ts";
import { ADMIN_TOKEN, backendFor, closeBackends, startService } from "../testkit/swap_service.ts";

const auth = { Authorization: `Bearer ${ADMIN_TOKEN}` };

async function assertErrorShape(res: Response, status: number, code: string, what: string) {
  assert.equal(res.status, status, what);
  const body = await res.json();
  assert.deepEqual(Object.keys(body), ["error"], `${what}: ${JSON.stringify(body)}`);
  assert.deepEqual(Object.keys(body.error).sort(), ["code", "message"], what);
  assert.equal(body.error.code, code, what);
  assert.ok(typeof body.error.message === "string" && body.error.message.length > 10, what);
  return body.error.message as string;
}

Deno.test("every error answer, admin ones included, is {error: {code, message}}", async () => {
  const reg = await makeRegistry();
  // A version whose model.onnx does not match its checksum: the admin activation rejects it.
  const broken = join(reg.root, MODEL, "20990101T000000Z-broken00");
  await cp(FIXTURES[1], broken, { recursive: true });
  const m = JSON.parse(await Deno.readTextFile(join(broken, "manifest.json")));
  m.version = "20990101T000000Z-broken00";
  await writeFile(join(broken, "manifest.json"), JSON.stringify(m));
  await writeFile(join(broken, "model.onnx"), new Uint8Array(100));
  const svc = await startService({ registry: reg.root, backend: "native", watch: false });
  try {
    const app = svc.app;
    const post = (path: string, init: RequestInit = {}) =>
      app.request(path, { method: "POST", ...init });
    const cases: [Response | Promise<Response>, number, string][] = [
      [post("/v1/classify", { body: "x" }), 415, "unsupported_media_type"],
      [
        post("/v1/classify", { body: "{", headers: { "content-type": "application/json" } }),
        400,
        "bad_json",
      ],
      [app.request("/nowhere"), 404, "not_found"],
      [post("/v1/admin/reload"), 401, "unauthorized"],
      [post("/v1/admin/models/nope/activate", { headers: auth }), 404, "unknown_version"],
      [post("/v1/admin/models/no%20way/activate", { headers: auth }), 400, "bad_version"],
      [post(`/v1/admin/models/${m.version}/activate`, { headers: auth }), 422, "bundle_rejected"],
    ];
    for (const [res, status, code] of cases) await assertErrorShape(await res, status, code, code);

    // A read-only source (--bundle): activation is a 409 in the same shape.
    const backend = await backendFor("native");
    const slot = new ModelSlot(null, "loading");
    const reloader = new Reloader({
      slot,
      source: new BundleSource(FIXTURES[0]),
      log: () => {},
      load: (dir) => loadModel(dir, { backend, maxBatch: 8 }),
    });
    const ro = createApp({ slot, config: defaultConfig(), reloader, adminToken: ADMIN_TOKEN });
    await assertErrorShape(await ro.request("/readyz"), 503, "not_ready", "not ready");
    await reloader.request({ kind: "follow", reason: "start" });
    const res = await ro.request("/v1/admin/models/v1/activate", { method: "POST", headers: auth });
    await assertErrorShape(res, 409, "read_only_registry", "read-only");
    await slot.close();
  } finally {
    await svc.close();
    await reg.cleanup();
    closeBackends();
  }
});

Deno.test("wrong admin tokens are throttled per client (429 + Retry-After) and logged without the token", async () => {
  const reg = await makeRegistry();
  const svc = await startService({ registry: reg.root, backend: "native", watch: false });
  try {
    let now = 0;
    const logs: string[] = [];
    const throttle = new FailureThrottle({
      burst: 5,
      refillMs: 1000,
      now: () => now,
      log: (l) => logs.push(l),
    });
    const app = createApp({
      slot: svc.slot,
      config: defaultConfig({ registry: reg.root }),
      reloader: svc.reloader,
      adminToken: ADMIN_TOKEN,
      adminThrottle: throttle,
    });
    const guess = (token: string) =>
      app.request("/v1/admin/reload", {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
      });
    const statuses: number[] = [];
    for (let i = 0; i < 50; i++) {
      const res = await guess(`guess-${i}-xxxxxxxxxxxxxxxx`);
      statuses.push(res.status);
      if (res.status === 429) {
        assert.equal(res.headers.get("retry-after"), "1");
        await assertErrorShape(res, 429, "too_many_attempts", "throttled");
      } else await res.body?.cancel();
    }
    assert.equal(statuses.filter((s) => s === 403).length, 5, statuses.join(","));
    assert.equal(statuses.filter((s) => s === 429).length, 45);
    // While throttled even the right token waits; one refill later it works again.
    assert.equal((await guess(ADMIN_TOKEN)).status, 429);
    now += 1000;
    const ok = await guess(ADMIN_TOKEN);
    assert.equal(ok.status, 200, await ok.text());
    assert.equal(
      logs.filter((l) => /wrong admin token on POST \/v1\/admin\/reload from local/.test(l)).length,
      5,
    );
    assert.equal(logs.filter((l) => l.includes("throttling local after 5")).length, 1);
    assert.ok(!logs.some((l) => l.includes("guess-") || l.includes(ADMIN_TOKEN)));
  } finally {
    await svc.close();
    await reg.cleanup();
    closeBackends();
  }
});
