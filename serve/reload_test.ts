import assert from "node:assert/strict";
import { fakeModel as fakeOf } from "../testkit/fake_model.ts";
import type { LoadedModel } from "./inference/model.ts";
import { ModelSlot } from "./inference/slot.ts";
import { ServiceMetrics } from "./metrics.ts";
import type { RegistrySource, VersionRef } from "./registry_source.ts";
import { Reloader } from "./reload.ts";

/** A fake model that records its release in `released`. */
function fakeModel(version: string, released: string[]): LoadedModel {
  return fakeOf(version, { onRelease: () => released.push(version) });
}

/** A source whose CURRENT is a variable; every version whose name starts with "bad" fails to load. */
function fakeSource(state: { current: string }): RegistrySource {
  return {
    kind: "dir",
    description: "fake registry",
    current: () => Promise.resolve({ name: "m", version: state.current }),
    localDir: (ref: VersionRef) => Promise.resolve(`/fake/${ref.version}`),
    fingerprint: () => Promise.resolve("same"),
    versions: () => Promise.resolve([]),
  };
}

Deno.test("Reloader serialises reloads and coalesces the ones queued behind a running load into the latest", async () => {
  const state = { current: "v1" };
  const loads: string[] = [], released: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  const slot = new ModelSlot();
  const metrics = new ServiceMetrics();
  const r = new Reloader({
    slot,
    source: fakeSource(state),
    metrics,
    log: () => {},
    load: async (dir) => {
      const v = dir.split("/").pop()!;
      loads.push(v);
      await gate;
      if (v.startsWith("bad")) throw new Error(`Bundle ${dir}: model.onnx: sha256 mismatch`);
      return fakeModel(v, released);
    },
  });
  assert.equal((await r.request({ kind: "follow", reason: "start" })).status, "swapped");
  let open!: () => void;
  gate = new Promise((res) => (open = res));
  state.current = "v2";
  const first = r.request({ kind: "follow", reason: "publish v2" });
  await new Promise((res) => setTimeout(res, 10)); // v2's load is now running, held by the gate
  state.current = "v3";
  const second = r.request({ kind: "follow", reason: "publish v3" });
  state.current = "v4";
  const third = r.request({ kind: "follow", reason: "publish v4" });
  open();
  const [o1, o2, o3] = await Promise.all([first, second, third]);
  assert.deepEqual(loads, ["v1", "v2", "v4"], "v3 was coalesced away");
  assert.equal(o1.version, "v2");
  assert.equal(o2.version, "v4");
  assert.equal(o2.superseded, true);
  assert.equal(o3.version, "v4");
  assert.equal(o3.superseded, undefined);
  assert.deepEqual(released, ["v1", "v2"]);
  assert.equal(slot.current?.version, "v4");
  assert.equal(metrics.swaps.get(), 3);

  // A failing version: rejected, counted, the old model stays; not reloaded until forced.
  state.current = "bad5";
  const bad = await r.request({ kind: "follow", reason: "publish bad5" });
  assert.equal(bad.status, "failed");
  assert.match(bad.error!, /sha256 mismatch/);
  assert.equal(slot.current?.version, "v4");
  assert.equal(r.status().lastError?.version, "bad5");
  assert.equal(metrics.reloadFailures.get(), 1);
  await r.request({ kind: "follow", reason: "poll" });
  assert.equal(loads.filter((v) => v === "bad5").length, 1);
  await r.request({ kind: "follow", reason: "admin", force: true });
  assert.equal(loads.filter((v) => v === "bad5").length, 2);
  // Activation needs a writable source.
  const ro = await r.request({ kind: "activate", version: "v1", reason: "admin" });
  assert.equal(ro.errorKind, "read-only");
  await slot.close();
});

Deno.test("Reloader counts a bad CURRENT once however often it is polled, and the gauge says it is bad now", async () => {
  const state = { current: "v1", broken: null as string | null };
  const source: RegistrySource = {
    ...fakeSource(state),
    current: () =>
      state.broken
        ? Promise.reject(
          new Error(`models/m/CURRENT must hold one version id, got ${state.broken}`),
        )
        : Promise.resolve({ name: "m", version: state.current }),
  };
  const metrics = new ServiceMetrics();
  const logs: string[] = [];
  const r = new Reloader({
    slot: new ModelSlot(),
    source,
    metrics,
    log: (l) => logs.push(l),
    load: (dir) => Promise.resolve(fakeModel(dir.split("/").pop()!, [])),
  });
  const scrape = () => metrics.render();
  await r.request({ kind: "follow", reason: "start" });
  assert.match(scrape(), /^model_reload_failing 0$/m);
  state.broken = '"garbage"';
  for (let i = 0; i < 20; i++) await r.request({ kind: "follow", reason: "poll" });
  assert.match(scrape(), /^model_reload_failures_total 1$/m);
  assert.match(scrape(), /^model_reload_failing 1$/m);
  assert.equal(r.status().failures, 1);
  assert.equal(logs.filter((l) => l.startsWith("Rejected")).length, 1, logs.join("\n"));
  // Another bad state is a new failure; so is the first one again after a good spell.
  state.broken = '""';
  await r.request({ kind: "follow", reason: "poll" });
  assert.match(scrape(), /^model_reload_failures_total 2$/m);
  state.broken = null;
  await r.request({ kind: "follow", reason: "poll" });
  assert.match(scrape(), /^model_reload_failing 0$/m);
  state.broken = '""';
  await r.request({ kind: "follow", reason: "poll" });
  await r.request({ kind: "follow", reason: "poll" });
  assert.match(scrape(), /^model_reload_failures_total 3$/m);
  assert.match(scrape(), /^model_reload_failing 1$/m);
});
