import assert from "node:assert/strict";
import { encodePng, ImageCodecError } from "../common/image_codec.ts";
import { preprocess } from "../common/preprocess.ts";
import { decodeImage } from "../common/image_codec.ts";
import { DecodePool } from "./decode_pool.ts";

const img = {
  width: 300,
  height: 200,
  channels: 3 as const,
  data: Uint8Array.from({ length: 300 * 200 * 3 }, (_, i) => (i * 7) % 256),
};

Deno.test("DecodePool decodes in a worker to the same floats as inline, and stops the worker when idle", async () => {
  const pool = new DecodePool();
  const png = encodePng(img);
  const inline = preprocess(decodeImage(png), "auto");
  const outs = await Promise.all([1, 2, 3].map(() => pool.decode(png, {}, "auto")));
  for (const x of outs) assert.deepEqual(Array.from(x), Array.from(inline));
  assert.equal(pool.pending, 0);
  pool.close();
});

Deno.test("DecodePool stops an idle worker after idleMs, and starts one again on demand", async () => {
  const pool = new DecodePool({ idleMs: 50 });
  const png = encodePng(img);
  assert.equal((await pool.decode(png, {}, "auto")).length, 784);
  await new Promise((r) => setTimeout(r, 150)); // the idle timer has fired: no worker is left
  assert.equal((await pool.decode(png, {}, "auto")).length, 784);
  pool.close();
  await assert.rejects(pool.decode(png, {}, "auto"), /the decode pool was closed/);
});

Deno.test("DecodePool rethrows the worker's codec errors as ImageCodecError with their kind", async () => {
  const pool = new DecodePool();
  const png = encodePng(img);
  await assert.rejects(
    pool.decode(png.slice(0, 200), {}, "auto"),
    (e: unknown) => e instanceof ImageCodecError && e.kind === "malformed",
  );
  await assert.rejects(
    pool.decode(png, { maxPixels: 1000 }, "auto"),
    (e: unknown) => e instanceof ImageCodecError && e.kind === "too-large",
  );
  // The pool still works after errors.
  assert.equal((await pool.decode(png, {}, "auto")).length, 784);
  pool.close();
});
