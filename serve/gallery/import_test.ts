import { deepEqual, equal, match } from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeGreyPng } from "../../common/image_codec.ts";
import { loadBackend, loadModel, ModelSlot } from "../inference/mod.ts";
import { Translator } from "../latents/translate.ts";
import { TINY_BUNDLE } from "../../testkit/fixtures.ts";
import { imageAt, readTestImages } from "../../testkit/test_images.ts";
import { Gallery } from "./gallery.ts";
import { importFolder } from "./import.ts";

Deno.test({
  name: "importFolder() adds every image with its id and metadata and skips undecodable files",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await mkdtemp(join(tmpdir(), "gallery-import-"));
    try {
      const images = readTestImages(30)!;
      const dir = join(tmp, "photos");
      await mkdir(join(dir, "shoes"), { recursive: true });
      for (let i = 0; i < 30; i++) {
        const sub = i % 2 ? "shoes/" : "";
        await writeFile(join(dir, `${sub}p${i}.png`), encodeGreyPng(imageAt(images, i), 28, 28));
      }
      await writeFile(join(dir, "p0.json"), JSON.stringify({ sku: "A-0" }));
      await writeFile(join(dir, "broken.png"), new TextEncoder().encode("not a png"));
      const { backend } = await loadBackend("native", { threads: 1 });
      const slot = new ModelSlot(await loadModel(TINY_BUNDLE, { backend, maxBatch: 64 }));
      const g = Gallery.open(join(tmp, "g.sqlite"), {
        slot,
        translator: new Translator({ minNeighbours: 0.8 }),
        log: () => {},
      });
      const r = await importFolder(g, dir, { batch: 8 });
      equal(r.imported, 30);
      equal(r.failed.length, 1);
      equal(r.failed[0].file, "broken.png");
      match(r.failed[0].error, /./);
      equal(g.index.size, 30);
      deepEqual(g.store.get("p0")!.metadata, { sku: "A-0" });
      deepEqual(g.store.get("shoes/p1")!.metadata, { file: "shoes/p1.png" });
      deepEqual(g.store.get("shoes/p1")!.pixels, imageAt(images, 1));
      await g.close();
      await slot.close();
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  },
});
