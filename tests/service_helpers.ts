/**
 * Shared fixtures for the service tests and scripts: the committed tiny bundle loaded on a
 * backend and wrapped in an app, Fashion-MNIST test images read straight from the IDX files,
 * and the "product photo" rendering (a dataset image turned back into what a shop photo looks
 * like: large, RGB, dark object on a white background with margins, JPEG-compressed).
 */
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import type { RawImage } from "../common/preprocess.ts";
import { createApp } from "../serve/app.ts";
import { defaultConfig, type ServeConfig } from "../serve/config.ts";
import {
  type BackendName,
  loadBackend,
  type LoadedModel,
  loadModel,
  ModelSlot,
} from "../serve/inference/mod.ts";
import { ServiceMetrics } from "../serve/metrics.ts";

export const TINY_BUNDLE = new URL("./testdata/tiny-bundle", import.meta.url).pathname;
export const DATA_DIR = Deno.env.get("FASHION_MNIST_DIR") ?? "/usr/share/datasets/fashion-mnist";

export interface Served {
  backend: BackendName;
  model: LoadedModel;
  slot: ModelSlot;
  metrics: ServiceMetrics;
  config: ServeConfig;
  app: ReturnType<typeof createApp>;
}

/** Loads `dir` on `backend` and builds an app around it, as main.ts does minus the port. */
export async function serveBundle(
  backend: BackendName,
  dir = TINY_BUNDLE,
  over: Partial<ServeConfig> = {},
): Promise<Served> {
  const config = defaultConfig({ bundle: dir, threads: 2, ...over });
  const metrics = new ServiceMetrics();
  const { backend: b } = await loadBackend(backend, { threads: config.threads });
  const model = await loadModel(dir, {
    backend: b,
    maxBatch: config.maxBatch,
    precision: config.precision,
    onBatch: (graph, rows) => metrics.batchSize.observe(rows, { graph }),
  });
  const slot = new ModelSlot(model);
  // Unexpected errors fail the tests loudly through the 500 status; keep the log quiet.
  const app = createApp({ slot, config, metrics, log: () => {} });
  return { backend, model, slot, metrics, config, app };
}

export interface TestImages {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

/** The first `count` Fashion-MNIST test images and labels, or null when the files are absent. */
export function readTestImages(count = 10000, dir = DATA_DIR): TestImages | null {
  let imgRaw: Uint8Array, lblRaw: Uint8Array;
  try {
    imgRaw = gunzipSync(readFileSync(join(dir, "t10k-images-idx3-ubyte.gz")));
    lblRaw = gunzipSync(readFileSync(join(dir, "t10k-labels-idx1-ubyte.gz")));
  } catch {
    return null;
  }
  const dv = new DataView(imgRaw.buffer, imgRaw.byteOffset);
  if (dv.getUint32(0) !== 2051 || dv.getUint32(8) !== IMAGE_SIZE) {
    throw new Error(`${dir}: t10k images are not an IDX 28x28 image file`);
  }
  const n = Math.min(count, dv.getUint32(4));
  return { images: imgRaw.slice(16, 16 + n * PIXELS), labels: lblRaw.slice(8, 8 + n), count: n };
}

export function imageAt(t: TestImages, i: number): Uint8Array {
  return t.images.subarray(i * PIXELS, (i + 1) * PIXELS);
}

/**
 * A 28x28 dataset image as a product photo: inverted to a dark object on white, upscaled
 * bilinearly so its longest side fills `objectSize` pixels, coloured (dark navy by default, so
 * the photo is really RGB and slightly less contrasted than the dataset), and centred on a
 * width x height white canvas.
 */
export function renderPhoto(
  px: Uint8Array,
  width = 200,
  height = 240,
  objectSize = 160,
  color: [number, number, number] = [30, 35, 60],
): RawImage {
  const out = new Uint8Array(width * height * 3).fill(255);
  const scale = objectSize / IMAGE_SIZE;
  const ox = Math.round((width - objectSize) / 2), oy = Math.round((height - objectSize) / 2);
  const at = (x: number, y: number) =>
    px[Math.min(27, Math.max(0, y)) * IMAGE_SIZE + Math.min(27, Math.max(0, x))];
  for (let y = 0; y < objectSize; y++) {
    for (let x = 0; x < objectSize; x++) {
      const sx = (x + 0.5) / scale - 0.5, sy = (y + 0.5) / scale - 0.5;
      const x0 = Math.floor(sx), y0 = Math.floor(sy), fx = sx - x0, fy = sy - y0;
      const v = (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) +
        fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
      const ink = v / 255; // 1 where the garment is, 0 on the background
      const o = ((oy + y) * width + ox + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round((1 - ink) * 255 + ink * color[c]);
    }
  }
  return { width, height, channels: 3, data: out };
}

/** Bytes -> base64 (chunked: String.fromCharCode has an argument limit). */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}
