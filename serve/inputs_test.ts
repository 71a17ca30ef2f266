import assert from "node:assert/strict";
import { encodeGreyPng } from "../common/image_codec.ts";
import { ApiError } from "./errors.ts";
import { mediaType, parsePreprocessMode, readBody, readImageBatch, readLatent } from "./inputs.ts";

const LIMITS = { maxBodyBytes: 10_000, maxPixels: 1_000_000, maxBatch: 4 };

function req(contentType: string | null, body: BodyInit | null): Request {
  const headers: Record<string, string> = contentType ? { "Content-Type": contentType } : {};
  return new Request("http://x/", { method: "POST", headers, body });
}

function status(s: number, code?: string) {
  return (e: unknown) =>
    e instanceof ApiError && e.status === s && (code === undefined || e.code === code);
}

Deno.test("mediaType() lower-cases and drops parameters", () => {
  assert.equal(mediaType("Image/PNG; charset=x"), "image/png");
  assert.equal(mediaType(null), "");
});

Deno.test("readBody() refuses by Content-Length before reading, and while streaming", async () => {
  const declared = new Request("http://x/", {
    method: "POST",
    body: "x",
    headers: { "content-length": "99999" },
  });
  await assert.rejects(readBody(declared, 100), status(413, "body_too_large"));
  await assert.rejects(readBody(req(null, new Uint8Array(101)), 100), status(413));
  assert.equal((await readBody(req(null, new Uint8Array(100)), 100)).length, 100);
});

Deno.test("readImageBatch() turns a 28x28 grey PNG into the same floats as its raw bytes", async () => {
  const px = Uint8Array.from({ length: 784 }, (_, i) => i % 256);
  const a = await readImageBatch(
    req("image/png", encodeGreyPng(px, 28, 28) as Uint8Array<ArrayBuffer>),
    LIMITS,
    "auto",
  );
  const b = await readImageBatch(req("application/octet-stream", px), LIMITS, "none");
  const c = await readImageBatch(
    req("application/json", JSON.stringify({ pixels: [Array.from(px)] })),
    LIMITS,
    "auto",
  );
  assert.equal(a.count, 1);
  assert.deepEqual(Array.from(a.images), Array.from(b.images));
  assert.deepEqual(Array.from(c.images), Array.from(b.images));
  assert.equal(b.images[255], 1);
});

Deno.test("readImageBatch() checks the batch size before decoding anything", async () => {
  const json = JSON.stringify({ images: Array(5).fill("not even base64 ***") });
  await assert.rejects(
    readImageBatch(req("application/json", json), LIMITS, "auto"),
    status(413, "batch_too_large"),
  );
});

Deno.test("parsePreprocessMode() accepts auto/none/absent and refuses the rest with 400", () => {
  assert.equal(parsePreprocessMode(undefined), "auto");
  assert.equal(parsePreprocessMode("none"), "none");
  assert.throws(() => parsePreprocessMode("AUTO"), status(400, "bad_parameter"));
});

Deno.test("readLatent() wants exactly L finite float32 numbers", async () => {
  assert.deepEqual(
    Array.from(await readLatent(req("application/json", '{"latent":[1.5,-2]}'), LIMITS, 2)),
    [1.5, -2],
  );
  await assert.rejects(
    readLatent(req("application/json", '{"latent":[1]}'), LIMITS, 2),
    status(422, "bad_latent_length"),
  );
  await assert.rejects(
    readLatent(req("application/json", '{"latent":[1,1e39]}'), LIMITS, 2),
    status(422, "bad_latent_value"),
  );
  await assert.rejects(readLatent(req("text/plain", "[1,2]"), LIMITS, 2), status(415));
});

Deno.test("readImageBatch() bounds the pixels of all images of one request together", async () => {
  const png = encodeGreyPng(new Uint8Array(600 * 600), 600, 600); // 360k pixels, a few hundred bytes
  const body = JSON.stringify({ images: Array(3).fill(btoa(String.fromCharCode(...png))) });
  const limits = { maxBodyBytes: 100_000, maxPixels: 1_000_000, maxBatch: 4 };
  await assert.rejects(
    readImageBatch(req("application/json", body), limits, "auto"),
    status(413, "image_too_large"),
  );
  const two = JSON.stringify({ images: Array(2).fill(btoa(String.fromCharCode(...png))) });
  assert.equal((await readImageBatch(req("application/json", two), limits, "auto")).count, 2);
});

Deno.test("readBody() answers 408 when the body has not arrived by the deadline", async () => {
  // A body that sends one chunk and then stalls, as a slow client does.
  const stalled = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array(10));
    },
  });
  const t0 = performance.now();
  await assert.rejects(readBody(req(null, stalled), 10_000, 100), status(408, "body_timeout"));
  const ms = performance.now() - t0;
  assert.ok(ms >= 90 && ms < 2_000, `took ${ms} ms`);
  // A body that arrives in time is unaffected by the deadline.
  assert.equal((await readBody(req(null, new Uint8Array(50)), 100, 1_000)).length, 50);
});

/** The IHDR of a `w` x `h` PNG at `depth` bits, colour type `type` (enough for the header). */
function pngHeader(w: number, h: number, depth: number, type: number): Uint8Array {
  const v = encodeGreyPng(new Uint8Array(784), 28, 28).slice();
  const dv = new DataView(v.buffer);
  dv.setUint32(16, w), dv.setUint32(20, h);
  v[24] = depth, v[25] = type;
  return v;
}

Deno.test("readImageBatch() refuses by decoded bytes (bit depth, channels), per image and per request", async () => {
  const limits = { ...LIMITS, maxPixels: 25_000_000, maxDecodedBytes: 100_000_000 };
  // 5000x5000 is within the pixel limit; 16-bit RGBA makes it 200 MB of samples.
  const deep = pngHeader(5000, 5000, 16, 6) as Uint8Array<ArrayBuffer>;
  await assert.rejects(
    readImageBatch(req("image/png", deep), limits, "auto"),
    (e: unknown) =>
      status(413, "image_too_large")(e) &&
      /5000x5000 decodes to 200000000 bytes .* above the limit of 100000000/.test(
        (e as Error).message,
      ),
  );
  // Two 8-bit RGBA 4000x4000 images: 64 MB each, fine alone, 128 MB together is too much.
  const rgba = pngHeader(4000, 4000, 8, 6);
  const b64 = btoa(String.fromCharCode(...rgba));
  await assert.rejects(
    readImageBatch(
      req("application/json", JSON.stringify({ images: [b64, b64] })),
      { ...limits, maxPixels: 40_000_000 },
      "auto",
    ),
    (e: unknown) =>
      status(413)(e) && /decode to 128000000 bytes in total/.test((e as Error).message),
  );
});
