/**
 * Canary and shadow traffic on the in-process app over a registry of the tiny fixtures: the
 * CANARY record's share of keyed requests reaches the canary and each key sticks to its
 * version, /metrics splits requests and labels by version, abort and promote are followed, a
 * canary past its p99 bound is stopped and the abort written into CANARY and HISTORY, a bad
 * canary leaves the primary serving, V2 routes alike, and the shadow agrees 100% with its twin
 * and exactly as often as offline with another version.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readHistory } from "../registry/registry_write.ts";
import {
  abortCanary,
  promoteCanary,
  readTrafficRecords,
  setShadow,
  startCanary,
} from "../registry/traffic.ts";
import { makeRegistry, MODEL, probeImages, VERSIONS } from "../testkit/fixtures.ts";
import { closeBackends, expectedLabels } from "../testkit/swap_service.ts";
import { addTwin, classifyKeyed, startTrafficService, TWIN } from "../testkit/traffic_service.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const images = probeImages();

/** Sends `keys` (one request each, 16 at a time); returns the version that answered each. */
async function send(
  app: { request: (p: string, i: RequestInit) => Response | Promise<Response> },
  keys: (string | null)[],
): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < keys.length; i += 16) {
    const rs = await Promise.all(
      keys.slice(i, i + 16).map((k, j) => classifyKeyed(app.request, images[(i + j) % 24], k)),
    );
    for (const r of rs) {
      assert.equal(r.status, 200);
      assert.equal(r.version, r.bodyVersion, "header and body name the same version");
      out.push(r.version!);
    }
  }
  return out;
}

Deno.test({
  ...opts,
  name: "canary at 20%: 20 +- 3% of 2000 keys, sticky keys, per-version metrics, abort, promote",
  async fn() {
    const reg = await makeRegistry();
    const s = await startTrafficService({ registry: reg.root, backend: "native" });
    try {
      await startCanary(reg.root, MODEL, VERSIONS[1], 20);
      await s.follow();
      const keys = Array.from({ length: 2000 }, (_, i) => `client-${i}`);
      const first = await send(s.app, keys);
      const share = first.filter((v) => v === VERSIONS[1]).length / 20;
      assert.ok(Math.abs(share - 20) <= 3, `canary share ${share}%`);
      assert.deepEqual(new Set(first), new Set([VERSIONS[0], VERSIONS[1]]));
      const again = await send(s.app, keys.slice(0, 400));
      assert.deepEqual(again, first.slice(0, 400), "every key reached the same version again");

      const text = await (await s.app.request("/metrics")).text();
      const canaryOk = text.match(
        new RegExp(
          `model_version_requests_total\\{role="canary",status="200",version="${
            VERSIONS[1]
          }"\\} (\\d+)`,
        ),
      );
      assert.equal(
        Number(canaryOk?.[1]),
        [...first, ...again].filter((v) => v === VERSIONS[1]).length,
      );
      assert.match(
        text,
        new RegExp(`model_version_predictions_total\\{label="[^"]+",role="canary"`),
      );
      assert.match(text, /canary_routing 1/);
      const models = await (await s.app.request("/v1/models")).json();
      assert.equal(models.traffic.canary.version, VERSIONS[1]);
      assert.equal(models.traffic.canary.routing, true);

      await abortCanary(reg.root, MODEL, "operator said so");
      await s.follow();
      assert.deepEqual(new Set(await send(s.app, keys.slice(0, 200))), new Set([VERSIONS[0]]));
      assert.equal(s.traffic.canarySlot.current, null, "the aborted canary is unloaded");

      await startCanary(reg.root, MODEL, VERSIONS[2], 50);
      await s.follow();
      assert.equal(new Set(await send(s.app, keys.slice(0, 200))).size, 2);
      await promoteCanary(reg.root, MODEL);
      await s.follow();
      assert.deepEqual(new Set(await send(s.app, keys.slice(0, 200))), new Set([VERSIONS[2]]));
      const h = await readHistory(join(reg.root, MODEL));
      assert.deepEqual(h.map((e) => e.action), [
        "publish",
        "canary",
        "abort",
        "canary",
        "promote",
        "canary",
      ]);
      assert.equal(h[2].reason, "operator said so");
    } finally {
      await s.close();
      await reg.cleanup();
    }
  },
});

Deno.test({
  ...opts,
  name: "a canary past its p99 bound stops getting requests and the abort names the bound",
  async fn() {
    const reg = await makeRegistry();
    const s = await startTrafficService({
      registry: reg.root,
      backend: "native",
      config: { canaryMaxP99Ms: 0.001, canaryMinRequests: 20 },
    });
    try {
      await startCanary(reg.root, MODEL, VERSIONS[1], 50);
      await s.follow();
      const answered = await send(s.app, Array.from({ length: 200 }, (_, i) => `k${i}`));
      const onCanary = answered.filter((v) => v === VERSIONS[1]).length;
      assert.ok(onCanary >= 20 && onCanary < 40, `${onCanary} canary answers before the stop`);
      assert.deepEqual(new Set(answered.slice(-100)), new Set([VERSIONS[0]]));
      const models = await (await s.app.request("/v1/models")).json();
      assert.match(
        models.traffic.canary.stopped,
        /automatic abort: p99 latency .* bound of 0.001 ms/,
      );
      for (let i = 0; i < 50; i++) {
        const { canary } = await readTrafficRecords(join(reg.root, MODEL));
        if (canary?.state === "aborted") break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const { canary } = await readTrafficRecords(join(reg.root, MODEL));
      assert.equal(canary?.state, "aborted");
      assert.match(canary!.reason!, /p99 latency/);
      const h = await readHistory(join(reg.root, MODEL));
      assert.equal(h.at(-1)!.action, "abort");
      assert.match(
        await (await s.app.request("/metrics")).text(),
        /canary_auto_aborts_total\{bound="p99"/,
      );
    } finally {
      await s.close();
      await reg.cleanup();
    }
  },
});

Deno.test({
  ...opts,
  name: "a canary failing its acceptance check is never routed to; V2 routes through the canary",
  async fn() {
    const reg = await makeRegistry();
    const s = await startTrafficService({ registry: reg.root, backend: "native" });
    try {
      const probe = join(reg.root, MODEL, VERSIONS[2], "manifest.json");
      const m = JSON.parse(await readFile(probe, "utf8"));
      m.probe.cases[0].probabilities = m.probe.cases[0].probabilities.map((p: number) => 1 - p);
      await writeFile(probe, JSON.stringify(m));
      await startCanary(reg.root, MODEL, VERSIONS[2], 100);
      await s.follow();
      assert.deepEqual(new Set(await send(s.app, ["a", "b", "c", null])), new Set([VERSIONS[0]]));
      const models = await (await s.app.request("/v1/models")).json();
      assert.equal(models.traffic.canary.loaded, false);
      assert.match(models.traffic.canary.error, /probe/);

      await startCanary(reg.root, MODEL, VERSIONS[1], 100);
      await s.follow();
      const body = {
        inputs: [{
          name: "image",
          shape: [1, 784],
          datatype: "FP32",
          data: Array.from(images[0], (v) => v / 255),
        }],
      };
      const r = await s.app.request(`/v2/models/${MODEL}/infer`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Request-Key": "v2-client" },
        body: JSON.stringify(body),
      });
      const text = await r.text();
      assert.equal(r.status, 200, text);
      assert.equal(JSON.parse(text).model_version, VERSIONS[1]);
    } finally {
      await s.close();
      await reg.cleanup();
    }
  },
});

Deno.test({
  ...opts,
  name: "shadow: 100% agreement with a twin, offline agreement with another version",
  async fn() {
    const reg = await makeRegistry();
    await addTwin(reg.root);
    const s = await startTrafficService({ registry: reg.root, backend: "native" });
    try {
      await setShadow(reg.root, MODEL, TWIN);
      await s.follow();
      await send(s.app, Array.from({ length: 240 }, () => null));
      await s.traffic.shadow.idle();
      let st = s.traffic.status().shadow!;
      assert.equal(st.compared + st.dropped, 240);
      assert.ok(st.compared >= 200, `${st.compared} compared`);
      assert.equal(st.agreement, 1);
      assert.ok(st.meanLatentDistance! < 1e-5, String(st.meanLatentDistance));

      await setShadow(reg.root, MODEL, VERSIONS[1]);
      await s.follow();
      await send(s.app, Array.from({ length: 240 }, () => null));
      await s.traffic.shadow.idle();
      st = s.traffic.status().shadow!;
      const expected = await expectedLabels(images);
      const a = expected.get(VERSIONS[0])!, b = expected.get(VERSIONS[1])!;
      const offline = a.filter((x, i) => x === b[i]).length / a.length;
      assert.ok(offline < 1, "the two fixtures disagree on some probe images");
      assert.equal(st.dropped, 0);
      assert.ok(Math.abs(st.agreement! - offline) < 1e-9, `${st.agreement} vs ${offline}`);
      const text = await (await s.app.request("/metrics")).text();
      assert.match(
        text,
        new RegExp(
          `shadow_agreement_ratio\\{primary="${VERSIONS[0]}",shadow="${VERSIONS[1]}"\\} ${offline}`,
        ),
      );
      assert.match(text, /shadow_latent_distance_mean\{/);
    } finally {
      await s.close();
      await reg.cleanup();
      closeBackends();
    }
  },
});
