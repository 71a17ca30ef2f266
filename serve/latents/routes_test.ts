import { equal, match, ok } from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { createApp } from "../app.ts";
import { defaultConfig } from "../config.ts";
import { loadBackend, loadModel, ModelSlot } from "../inference/mod.ts";
import { makeTranslationRegistry } from "../../testkit/translation_registry.ts";
import { manifestOf } from "../../testkit/fixtures.ts";
import { decodeProbePixels } from "../../bundle/mod.ts";

const reg = await makeTranslationRegistry();
const { backend } = await loadBackend("native", { threads: 1 });
const model = await loadModel(reg.dirs[2], { backend, maxBatch: 64 });
const slot = new ModelSlot(model);
const appWith = (minNeighbours: number) =>
  createApp({
    slot,
    config: defaultConfig({ registry: reg.root, translateMinNeighbours: minNeighbours }),
    log: () => {},
  });
const app = appWith(0);
const [A, B, C] = reg.versions;
const post = (body: unknown, a = app) =>
  a.request("/v1/latent/translate", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

Deno.test({
  name: "every latent from /v1/classify and /v1/latent names its latent space",
  sanitizeResources: false,
  fn: async () => {
    const px = decodeProbePixels(manifestOf(reg.dirs[0]).probe.cases[0].pixels);
    const body = JSON.stringify({ pixels: [Array.from(px), Array.from(px)] });
    const init = { method: "POST", headers: { "content-type": "application/json" }, body };
    const cls = await app.request("/v1/classify", init);
    equal(cls.headers.get("X-Latent-Space"), C);
    const c = await cls.json();
    equal(c.latentSpace, C);
    for (const p of c.predictions) equal(p.latent.space, C);
    const lat = await (await app.request("/v1/latent?samples=2", init)).json();
    equal(lat.latentSpace, C);
    equal(lat.latents.length, 2);
    for (const l of lat.latents) equal(l.space, C);
    equal((await (await app.request("/v1/models")).json()).active.latentSpace, C);
  },
});

Deno.test({
  name: "/v1/latent/translate chains maps through versions and is the identity in the active space",
  sanitizeResources: false,
  fn: async () => {
    const r = await post({ from: A, latents: [[0.5, -1], [2, 0]] });
    equal(r.status, 200);
    const j = await r.json();
    equal(j.latentSpace, C);
    equal(j.from, A);
    equal(
      j.path.map((s: { from: string; to: string }) => `${s.from}>${s.to}`).join(),
      `${A}>${B},${B}>${C}`,
    );
    equal(j.latents.length, 2);
    ok(j.latents.every((l: number[]) => l.length === 2 && l.every(Number.isFinite)));
    const same = await (await post({ from: C, latents: [[0.5, -1]] })).json();
    equal(same.path.length, 0);
    equal(same.latents[0][0], 0.5);
  },
});

Deno.test({
  name: "/v1/latent/translate refuses unknown spaces, poor maps and malformed latents clearly",
  sanitizeResources: false,
  fn: async () => {
    const unknown = await post({ from: "some-other-space", latents: [[0, 0]] });
    equal(unknown.status, 404);
    const u = await unknown.json();
    equal(u.error.code, "no_translation");
    match(u.error.message, new RegExp(`version ${A} .* carries no map`));
    const strict = await post({ from: A, latents: [[0, 0]] }, appWith(1));
    equal(strict.status, 422);
    const s = await strict.json();
    equal(s.error.code, "translation_too_poor");
    match(s.error.message, /keeps [0-9.]+% of 10 nearest neighbours .* below the bound of 100.0%/);
    const short = await post({ from: A, latents: [[0, 0, 0]] });
    equal(short.status, 422);
    match((await short.json()).error.message, /latents\[0\] must be 2 numbers/);
    equal((await post({ latents: [[0, 0]] })).status, 400);
  },
});

Deno.test({
  name: "/v1/latent/translate names the missing version when a link of the chain was removed",
  sanitizeResources: false,
  fn: async () => {
    await rm(join(reg.root, "fashion-vae", B), { recursive: true });
    const r = await post({ from: A, latents: [[0, 0]] }, appWith(0));
    equal(r.status, 404);
    match((await r.json()).error.message, new RegExp(`needs version ${B}, which cannot be read`));
    await slot.close();
    await reg.cleanup();
  },
});
