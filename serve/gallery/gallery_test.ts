/**
 * The gallery end to end through the app (no port): admin add/remove, /v1/similar by image and
 * by latent, a restart on the same database, a corrupt database, and a hot swap during which
 * latents are translated, then re-embedded, with progress in /metrics. Real tiny bundles
 * published by the real publisher (testkit/translation_registry.ts), real test images.
 */
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApp } from "../app.ts";
import { defaultConfig } from "../config.ts";
import { loadBackend, loadModel, ModelSlot } from "../inference/mod.ts";
import { Translator } from "../latents/translate.ts";
import { imageAt, readTestImages } from "../../testkit/test_images.ts";
import { makeTranslationRegistry } from "../../testkit/translation_registry.ts";
import { Gallery } from "./gallery.ts";
import { startGallery } from "./mod.ts";

const TOKEN = "gallery-admin-token-0123";
const reg = await makeTranslationRegistry();
const { backend } = await loadBackend("native", { threads: 1 });
const images = readTestImages(300)!;
const tmp = await mkdtemp(join(tmpdir(), "gallery-test-"));
const translator = new Translator({ minNeighbours: 0 });

async function service(dbFile: string, versionIndex = 0, tr = translator) {
  const slot = new ModelSlot(await loadModel(reg.dirs[versionIndex], { backend, maxBatch: 64 }));
  const handle = startGallery({ path: dbFile, slot, translator: tr, log: () => {}, followMs: 20 });
  const config = defaultConfig({ registry: reg.root, translateMinNeighbours: 0 });
  const app = createApp({
    slot,
    config,
    adminToken: TOKEN,
    gallery: handle,
    translator,
    log: () => {},
  });
  const close = async () => {
    await handle.close();
    await slot.close();
  };
  return { slot, handle, app, close };
}

const json = (body: unknown, token?: string): RequestInit => ({
  method: "POST",
  headers: {
    "content-type": "application/json",
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  },
  body: JSON.stringify(body),
});
const items = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, j) => ({
    id: `item-${from + j}`,
    pixels: Array.from(imageAt(images, from + j)),
    metadata: { label: images.labels[from + j] },
  }));
const pixelsBody = (i: number) => ({
  method: "POST",
  headers: { "content-type": "application/octet-stream" },
  body: imageAt(images, i).slice(),
});

Deno.test({
  name: "gallery: admin add and remove, /v1/similar by image and by latent",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s = await service(join(tmp, "a.sqlite"));
    try {
      equal(
        (await s.app.request("/v1/admin/gallery/items", json({ items: items(0, 5) }))).status,
        401,
      );
      const add = await s.app.request(
        "/v1/admin/gallery/items",
        json({ items: items(0, 200) }, TOKEN),
      );
      equal(add.status, 201);
      equal((await add.json()).gallery.items, 200);
      const r = await (await s.app.request("/v1/similar?k=5", pixelsBody(7))).json();
      equal(r.results.length, 5);
      equal(r.results[0].id, "item-7");
      ok(r.results[0].distance < 1e-4);
      deepEqual(r.results[0].metadata, { label: images.labels[7] });
      ok(r.results.every((h: { translated: boolean }) => !h.translated));
      equal(r.gallery.consistent, true);
      const byLatent =
        await (await s.app.request("/v1/similar", json({ latent: r.query.latent, k: 5 }))).json();
      deepEqual(
        byLatent.results.map((h: { id: string }) => h.id),
        r.results.map((h: { id: string }) => h.id),
      );
      const del = await s.app.request("/v1/admin/gallery/items/item-7", {
        method: "DELETE",
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      equal(del.status, 200);
      const after = await (await s.app.request("/v1/similar?k=5", pixelsBody(7))).json();
      ok(!after.results.some((h: { id: string }) => h.id === "item-7"));
      equal(after.gallery.items, 199);
      const png = await s.app.request("/v1/gallery/items/item-3/image");
      equal(png.headers.get("content-type"), "image/png");
      equal((await s.app.request("/v1/gallery/items/item-7/image")).status, 404);
      const bad = await s.app.request("/v1/similar", json({ latent: [1, 2, 3] }));
      equal(bad.status, 422);
      match((await bad.json()).error.message, /latent\[0\] must be 2 numbers/);
      // The query is checked by the route's own schema, with the message the handler gave.
      for (
        const [q, message] of [
          ["k=0", 'k must be an integer in 1..100, got "0"'],
          ["k=abc", 'k must be an integer in 1..100, got "abc"'],
          ["preprocess=AUTO", 'preprocess must be "auto" or "none", got "AUTO"'],
        ]
      ) {
        const res = await s.app.request(`/v1/similar?${q}`, pixelsBody(7));
        equal(res.status, 400, q);
        deepEqual(await res.json(), { error: { code: "bad_parameter", message } });
      }
      const jsonK = await s.app.request("/v1/similar?k=9", json({ latent: r.query.latent, k: 3 }));
      equal((await jsonK.json()).results.length, 3, "the body's k wins over ?k=");
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "gallery: the database survives a restart with the same items and answers",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const file = join(tmp, "restart.sqlite");
    const s1 = await service(file);
    await s1.app.request("/v1/admin/gallery/items", json({ items: items(0, 150) }, TOKEN));
    const before = await (await s1.app.request("/v1/similar?k=10", pixelsBody(20))).json();
    await s1.close();
    const s2 = await service(file);
    try {
      const after = await (await s2.app.request("/v1/similar?k=10", pixelsBody(20))).json();
      equal(after.gallery.items, 150);
      deepEqual(after.results, before.results);
    } finally {
      await s2.close();
    }
  },
});

Deno.test({
  name: "gallery: a corrupt database is reported clearly and classification still serves",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const file = join(tmp, "corrupt.sqlite");
    await writeFile(file, new TextEncoder().encode("this is not an sqlite database ".repeat(200)));
    const s = await service(file);
    try {
      equal(s.handle.current, null);
      match(
        s.handle.reason,
        /corrupt\.sqlite: cannot be used as a gallery: file is not a database/,
      );
      equal((await s.app.request("/v1/classify", pixelsBody(1))).status, 200);
      const r = await s.app.request("/v1/similar", pixelsBody(1));
      equal(r.status, 503);
      const e = await r.json();
      equal(e.error.code, "gallery_unavailable");
      match(e.error.message, /file is not a database/);
      equal(
        Deno.readTextFileSync(file).startsWith("this is not"),
        true,
        "the file is left as it was",
      );
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name:
    "gallery: after a hot swap latents are translated at once, then re-embedded, with progress in /metrics",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const file = join(tmp, "swap.sqlite");
    const s = await service(file);
    try {
      await s.app.request("/v1/admin/gallery/items", json({ items: items(0, 300) }, TOKEN));
      const g = s.handle.current as Gallery;
      // Swap to the version published next (its bundle maps from the first), with slow re-embedding.
      const next = await loadModel(reg.dirs[1], { backend, maxBatch: 64 });
      const swapped = s.slot.swap(next);
      const first = await (await s.app.request("/v1/similar?k=10", pixelsBody(5))).json();
      equal(first.latentSpace, reg.versions[1]);
      equal(first.gallery.latentSpace, reg.versions[1]);
      ok(first.gallery.translated + first.gallery.fresh === 300, JSON.stringify(first.gallery));
      ok(first.gallery.translated > 0, "translated while re-embedding runs");
      equal(first.gallery.consistent, false);
      ok(first.results.some((h: { translated: boolean }) => h.translated));
      const metrics = await (await s.app.request("/metrics")).text();
      match(metrics, /gallery_items\{state="translated"\} \d+/);
      match(metrics, /gallery_reembed_remaining \d+/);
      await swapped;
      await g.idle();
      const done = await (await s.app.request("/v1/similar?k=10", pixelsBody(5))).json();
      equal(done.gallery.fresh, 300);
      equal(done.gallery.consistent, true);
      equal(done.results[0].id, "item-5");
      match(await (await s.app.request("/metrics")).text(), /gallery_reembedded_total 300/);
      // The stored latents moved with it: a restart on the new model needs no re-embedding.
      const rows = g.store.rows();
      ok(rows.every((r) => r.space === reg.versions[1] && !r.translated));
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "gallery: without a usable map, items wait (never returned) until re-embedded",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const s = await service(join(tmp, "nomap.sqlite"), 0, new Translator({ minNeighbours: 1 }));
    try {
      await s.app.request("/v1/admin/gallery/items", json({ items: items(0, 300) }, TOKEN));
      const g = s.handle.current as Gallery;
      const swapped = s.slot.swap(await loadModel(reg.dirs[1], { backend, maxBatch: 64 }));
      const first = await (await s.app.request("/v1/similar?k=10", pixelsBody(5))).json();
      equal(first.gallery.translated, 0);
      ok(first.gallery.pending > 0, JSON.stringify(first.gallery));
      ok(first.results.length <= first.gallery.fresh);
      await swapped;
      await g.idle();
      const done = await (await s.app.request("/v1/similar?k=10", pixelsBody(5))).json();
      equal(done.gallery.fresh, 300);
      equal(done.results[0].id, "item-5");
    } finally {
      await s.close();
    }
  },
});

Deno.test({
  name: "gallery: cleanup",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await rm(tmp, { recursive: true, force: true });
    await reg.cleanup();
  },
});
