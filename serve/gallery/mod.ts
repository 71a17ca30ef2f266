/**
 * Starting the gallery for the server (main.ts): open the database, keep it aligned with the
 * model serving now (a cheap check of the slot every half second, so no hot-swap code needs to
 * know about the gallery), and seed it with test images when asked and empty. A database that
 * cannot be opened leaves the handle empty with the reason, and the service serves on.
 */
import type { ModelSlot } from "../inference/mod.ts";
import { spaceOf } from "../latents/routes.ts";
import type { Translator } from "../latents/translate.ts";
import { Gallery } from "./gallery.ts";
import type { GalleryHandle } from "./routes.ts";
import { seedWithTestImages } from "./seed.ts";

export { Gallery } from "./gallery.ts";
export type { GalleryHandle } from "./routes.ts";

export interface StartOptions {
  path: string | undefined;
  slot: ModelSlot;
  translator: Translator;
  seed?: { count: number; dataDir: string };
  log?: (line: string) => void;
  /** How often the slot is checked for a new model, ms. */
  followMs?: number;
  /** Re-embedding batch size and pause (GalleryOptions). */
  batch?: number;
  pauseMs?: number;
}

export function startGallery(opts: StartOptions): GalleryHandle & { close: () => Promise<void> } {
  const log = opts.log ?? ((l: string) => console.log(l));
  const handle: GalleryHandle & { close: () => Promise<void> } = {
    current: null,
    reason: "the service was started without --gallery <file>",
    close: async () => {},
  };
  if (!opts.path) return handle;
  let g: Gallery;
  try {
    g = Gallery.open(opts.path, {
      slot: opts.slot,
      translator: opts.translator,
      log,
      batch: opts.batch,
      pauseMs: opts.pauseMs,
    });
  } catch (e) {
    handle.reason = (e as Error).message;
    log(`Gallery disabled: ${handle.reason}; classification and the rest of the API still serve`);
    return handle;
  }
  handle.current = g;
  log(`Gallery ${opts.path}: ${g.index.size} item(s)`);
  let seeded = !opts.seed || opts.seed.count <= 0 || g.index.size > 0;
  let busy = false;
  const tick = async () => {
    const m = opts.slot.current;
    if (busy || !m) return;
    busy = true;
    try {
      if (g.space !== spaceOf(m)) await opts.slot.use((pinned) => g.align(pinned));
      if (!seeded) {
        seeded = true;
        const n = await seedWithTestImages(g, opts.seed!.dataDir, opts.seed!.count, m.labels);
        log(`Gallery seeded with ${n} Fashion-MNIST test image(s)`);
      }
    } catch (e) {
      log(`Gallery: ${(e as Error).message}`);
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.followMs ?? 500);
  void tick();
  handle.close = async () => {
    clearInterval(timer);
    await g.close();
  };
  return handle;
}
