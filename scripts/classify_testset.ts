/**
 * Classifies the Fashion-MNIST test set through the HTTP API and checks it against the bundle:
 * every test image is encoded as a PNG file and sent in multipart batches to POST /v1/classify;
 * the predictions must agree one by one with a direct onnxruntime run of the same bundle
 * (serve/inference, no HTTP, no PNG), and the accuracy on the manifest's evaluation subset must
 * equal the manifest's stated testAccuracy. Then the same images rendered as product photos
 * (200x240 RGB JPEG, dark on white) go through ?preprocess=auto and their accuracy is printed.
 *
 * By default the API runs in-process (createApp + app.request, the same code path as the
 * server minus the socket); --url sends to a running server instead, which must serve the
 * same bundle version (checked from /v1/models).
 *
 *   npx deno run -A scripts/classify_testset.ts --bundle tests/testdata/tiny-bundle
 *   npx deno run -A scripts/classify_testset.ts --url http://localhost:8000 --registry models
 */
import { argmax } from "../common/argmax.ts";
import { DATA_DIR_ENV, DEFAULT_DATA_DIR, FILES } from "../common/fashion_mnist.ts";
import { choiceFlag, parseCommandFlags } from "../common/flags.ts";
import { encodeGreyPng, encodeJpeg } from "../common/image_codec.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";
import { renderPhoto } from "../testkit/photo.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";
import { imageAt, readTestImages } from "../testkit/test_images.ts";
import { BUNDLE_FLAGS, bundleDir, runScript } from "./_cli.ts";

const FLAGS = {
  ...BUNDLE_FLAGS,
  model: { type: "string", help: "model name in the registry" },
  backend: choiceFlag(["native", "wasm"], "backend for the direct run and the in-process app"),
  url: { type: "string", help: "base URL of a running server (default: in-process app)" },
  count: {
    type: "int",
    default: 10000,
    help: "test images to classify (from the start of the test set)",
  },
  "photo-count": {
    type: "int",
    default: 10000,
    help: "test images to classify as product photos (0 skips)",
  },
  batch: { type: "int", default: 200, help: "PNG files per multipart request" },
  "data-dir": {
    type: "string",
    env: DATA_DIR_ENV,
    default: DEFAULT_DATA_DIR,
    help: "Fashion-MNIST IDX dir",
  },
} as const;

const USAGE = "Usage: npx deno run -A scripts/classify_testset.ts [flags]";

type Post = (path: string, body: FormData) => Promise<Response>;

async function classifyFiles(
  post: Post,
  files: Uint8Array[],
  type: string,
  query: string,
  batch: number,
  expectVersion: string,
): Promise<number[]> {
  const out: number[] = [];
  for (let start = 0; start < files.length; start += batch) {
    const form = new FormData();
    files.slice(start, start + batch).forEach((f, i) =>
      form.append(
        `f${i}`,
        new Blob([f as Uint8Array<ArrayBuffer>], { type }),
        `${start + i}.${type.split("/")[1]}`,
      )
    );
    const res = await post(`/v1/classify${query}`, form);
    const text = await res.text();
    if (res.status !== 200) {
      throw new Error(
        `POST /v1/classify${query} (images ${start}..) answered ${res.status}: ${
          text.slice(0, 300)
        }`,
      );
    }
    const body = JSON.parse(text);
    if (body.model.version !== expectVersion) {
      throw new Error(
        `the server answered with model version ${body.model.version}, the local bundle is ${expectVersion}`,
      );
    }
    for (const p of body.predictions) out.push(p.index);
  }
  return out;
}

/** Accuracy of a direct run on the test images mirrored left-right (a shoe facing the other way). */
async function mirroredAccuracy(
  model: { encode: (x: Float32Array, n: number) => Promise<{ probabilities: Float32Array }> },
  test: { images: Uint8Array; labels: Uint8Array; count: number },
  K: number,
): Promise<number> {
  const mirrored = new Uint8Array(test.count * PIXELS);
  for (let i = 0; i < test.count; i++) {
    for (let y = 0; y < IMAGE_SIZE; y++) {
      for (let x = 0; x < IMAGE_SIZE; x++) {
        mirrored[i * PIXELS + y * IMAGE_SIZE + x] =
          test.images[i * PIXELS + y * IMAGE_SIZE + IMAGE_SIZE - 1 - x];
      }
    }
  }
  const out = await model.encode(normalizePixels(mirrored), test.count);
  let ok = 0;
  for (let i = 0; i < test.count; i++) {
    if (argmax(out.probabilities, i * K, K) === test.labels[i]) ok++;
  }
  return ok / test.count;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

/** Argmax class of each image on a direct run (raw bytes / 255, no codec, no HTTP). */
async function directPredictions(
  model: { encode: (x: Float32Array, n: number) => Promise<{ probabilities: Float32Array }> },
  images: Uint8Array,
  count: number,
  K: number,
): Promise<number[]> {
  const out = await model.encode(normalizePixels(images.subarray(0, count * PIXELS)), count);
  return Array.from({ length: count }, (_, i) => argmax(out.probabilities, i * K, K));
}

/**
 * How requests reach the API: the in-process app, or a running server at `url` that must serve
 * the same bundle version.
 */
async function poster(
  url: string | undefined,
  app: { request: (path: string, init: RequestInit) => Response | Promise<Response> },
  model: { name: string; version: string },
): Promise<Post> {
  if (!url) return (path, body) => Promise.resolve(app.request(path, { method: "POST", body }));
  const remote = await (await fetch(new URL("/v1/models", url))).json();
  if (remote.active?.version !== model.version) {
    throw new Error(
      `${url} serves ${remote.active?.name}@${remote.active?.version}, not ${model.name}@${model.version}`,
    );
  }
  return (path, body) => fetch(new URL(path, url), { method: "POST", body });
}

/** The first `count` test images rendered as product photos and classified with preprocess=auto. */
async function photoRow(
  post: Post,
  test: { images: Uint8Array; labels: Uint8Array; count: number },
  count: number,
  batch: number,
  version: string,
): Promise<{ idx: number[]; timing: string }> {
  let t0 = performance.now();
  const photos = Array.from(
    { length: count },
    (_, i) => encodeJpeg(renderPhoto(imageAt(test, i)), 85),
  );
  const renderMs = performance.now() - t0;
  t0 = performance.now();
  const idx = await classifyFiles(post, photos, "image/jpeg", "?preprocess=auto", batch, version);
  const photoMs = performance.now() - t0;
  return {
    idx,
    timing: `render ${Math.round(renderMs / 1000)} s, classify ${Math.round(photoMs / 1000)} s`,
  };
}

function testImages(count: number, dir: string) {
  const test = readTestImages(count, dir);
  if (!test) {
    throw new Error(
      `Cannot read the Fashion-MNIST test set from ${dir} (${FILES.testImages}, ${FILES.testLabels}); set --data-dir`,
    );
  }
  return test;
}

/**
 * The accuracy on the manifest's evaluation subset beside the one it states. data.evaluation
 * {first: n} means the first n test images; absent means all 10,000.
 */
function statedAccuracy(
  mf: { data: unknown; metrics: { testAccuracy: number } },
  count: number,
  correctOfFirst: (n: number) => number,
) {
  const ev = (mf.data as { evaluation?: { first?: number; count?: number } }).evaluation;
  const evCount = Math.min(count, ev?.count ?? ev?.first ?? 10000);
  const evAcc = correctOfFirst(evCount) / evCount;
  const stated = mf.metrics.testAccuracy;
  return { evCount, evAcc, stated, matches: evEqual(evAcc, stated, evCount) };
}

/** A report row: an accuracy beside the plain one and the drop in points (and a note). */
function dropRow(what: string, acc: number, plain: number, note?: string): [string, string] {
  const drop = ((plain - acc) * 100).toFixed(2);
  return [
    what,
    `${pct(acc)} vs ${pct(plain)} plain: drop ${drop} points${note ? ` (${note})` : ""}`,
  ];
}

/** The rows of the API run: its accuracy and speed, its agreement, the manifest's figure. */
function apiRows(
  ok: number,
  count: number,
  apiMs: number,
  disagree: number,
  evCount: number,
  evAcc: number,
  stated: number,
): [string, string][] {
  return [
    [
      "API (PNG files) accuracy, all images",
      `${pct(ok / count)} (${ok}/${count}), ${Math.round(count / (apiMs / 1000))} images/s`,
    ],
    [
      "agreement API vs direct onnxruntime",
      `${count - disagree}/${count}${disagree ? `  (${disagree} differ!)` : " (identical)"}`,
    ],
    [
      `accuracy on manifest's evaluation set (first ${evCount})`,
      `${pct(evAcc)}; manifest states ${pct(stated)} -> ${
        evEqual(evAcc, stated, evCount) ? "EQUAL" : "DIFFERENT"
      }`,
    ],
  ];
}

function evEqual(evAcc: number, stated: number, evCount: number): boolean {
  return Math.abs(evAcc - stated) < 0.5 / evCount;
}

async function main(args: string[]): Promise<number> {
  const f = parseCommandFlags(args, FLAGS, USAGE, Deno.env.toObject());
  if (!f) return 0;
  const dir = await bundleDir(
    f.bundle as string | undefined,
    f.registry as string,
    f.model as string | undefined,
  );
  const test = testImages(f.count as number, f["data-dir"] as string);
  const served = await serveBundle(f.backend as "native" | "wasm", dir, {
    maxBatch: Math.max(256, f.batch as number),
  });
  const { model } = served;
  console.log(
    `Bundle ${model.name}@${model.version} (${dir}), backend ${model.backend}, ${test.count} test images`,
  );

  // 1. Direct onnxruntime run: raw bytes / 255, no codec, no HTTP.
  let t0 = performance.now();
  const K = model.labels.length;
  const directIdx = await directPredictions(model, test.images, test.count, K);
  console.log(`direct run: ${Math.round(performance.now() - t0)} ms`);

  // 2. The API, with every image as a PNG file.
  const post = await poster(f.url as string | undefined, served.app, model);
  const pngs = Array.from(
    { length: test.count },
    (_, i) => encodeGreyPng(imageAt(test, i), IMAGE_SIZE, IMAGE_SIZE),
  );
  t0 = performance.now();
  const apiIdx = await classifyFiles(post, pngs, "image/png", "", f.batch as number, model.version);
  const apiMs = performance.now() - t0;
  const disagree = apiIdx.filter((p, i) => p !== directIdx[i]).length;
  const correct = (idx: number[], from = 0, n = idx.length) =>
    idx.slice(from, from + n).filter((p, i) => p === test.labels[from + i]).length;

  // 3. The manifest's stated accuracy, on the subset it was measured on.
  const { evCount, evAcc, stated, matches } = statedAccuracy(
    model.manifest,
    test.count,
    (n) => correct(apiIdx, 0, n),
  );

  const rows = apiRows(correct(apiIdx), test.count, apiMs, disagree, evCount, evAcc, stated);

  // 4. Product photos through preprocess=auto.
  const photoCount = Math.min(f["photo-count"] as number, test.count);
  let photoOk = true;
  if (photoCount > 0) {
    const photos = await photoRow(post, test, photoCount, f.batch as number, model.version);
    const plainAcc = correct(apiIdx, 0, photoCount) / photoCount;
    const photoAcc = correct(photos.idx) / photoCount;
    rows.push(
      dropRow(
        `product photos (200x240 JPEG), first ${photoCount}`,
        photoAcc,
        plainAcc,
        photos.timing,
      ),
    );
    photoOk = Number.isFinite(photoAcc);
  }
  // 5. The same test images mirrored, on the direct path.
  const directAcc = correct(directIdx) / test.count;
  rows.push(
    dropRow("mirrored test images (direct run)", await mirroredAccuracy(model, test, K), directAcc),
  );
  const w = Math.max(...rows.map((r) => r[0].length));
  console.log(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n"));
  await served.slot.close();
  return disagree === 0 && matches && photoOk ? 0 : 1;
}

if (import.meta.main) await runScript("classify_testset", USAGE, FLAGS, main);
