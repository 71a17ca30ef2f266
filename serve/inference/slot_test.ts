import assert from "node:assert/strict";
import { fakeModel as fakeOf } from "../../testkit/fake_model.ts";
import { ModelSlot, NoModelError } from "./slot.ts";

/** A fake model whose runs wait for `gate`; `state.released` records its release. */
function fakeModel(version: string, gate: Promise<void> = Promise.resolve()) {
  const state = { released: false };
  const model = fakeOf(version, {
    gate,
    onRelease: () => (state.released = true),
    dir: "/nowhere",
    backend: "wasm",
  });
  return { model, state };
}

Deno.test("ModelSlot.use() on an empty slot throws NoModelError with the reason", async () => {
  const slot = new ModelSlot(null, "registry is empty");
  await assert.rejects(
    slot.use(() => Promise.resolve(1)),
    (e) => e instanceof NoModelError && /registry is empty/.test((e as Error).message),
  );
});

Deno.test("ModelSlot.swap() serves new requests from the new model while old ones finish on the old", async () => {
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  const v1 = fakeModel("v1", gate), v2 = fakeModel("v2");
  const slot = new ModelSlot(v1.model);
  const inflight = slot.use(async (m) => ({
    version: m.version,
    out: await m.encode(new Float32Array(784), 1),
  }));
  const swapped = slot.swap(v2.model);
  assert.equal(slot.current?.version, "v2");
  assert.equal(await slot.use((m) => Promise.resolve(m.version)), "v2");
  assert.equal(v1.state.released, false, "old model must not be released while a request uses it");
  open();
  const r = await inflight;
  assert.equal(r.version, "v1");
  assert.equal(r.out.count, 1);
  await swapped;
  assert.equal(v1.state.released, true);
  assert.equal(v2.state.released, false);
  await slot.close();
  assert.equal(v2.state.released, true);
  assert.equal(slot.current, null);
});
