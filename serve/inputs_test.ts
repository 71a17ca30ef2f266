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
