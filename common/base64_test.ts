import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { decodeBase64, encodeBase64 } from "./base64.ts";

Deno.test("encodeBase64() matches Node's Buffer base64 across the chunk boundary", () => {
  for (const n of [0, 1, 2, 3, 0x8000 - 1, 0x8000, 0x8000 + 1, 100_000]) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + (i >> 8)) & 0xff);
    assert.equal(encodeBase64(bytes), Buffer.from(bytes).toString("base64"), `${n} bytes`);
  }
});

Deno.test("decodeBase64() inverts encodeBase64() and ignores whitespace", () => {
  const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => (i * 11) & 0xff);
  const b64 = encodeBase64(bytes);
  assert.deepEqual(decodeBase64(b64), bytes);
  assert.deepEqual(decodeBase64(b64.replace(/(.{76})/g, "$1\r\n")), bytes);
  assert.deepEqual(decodeBase64(""), new Uint8Array(0));
});

Deno.test("decodeBase64() refuses invalid input with a message saying why", () => {
  for (const bad of ["***", "a", "ab=c"]) {
    assert.throws(
      () => decodeBase64(bad),
      (e) => e instanceof TypeError && /Cannot decode base64: \d+ characters/.test(e.message),
    );
  }
});
