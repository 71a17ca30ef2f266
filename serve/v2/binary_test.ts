import assert from "node:assert/strict";
import {
  BinaryReader,
  bytesFloat32,
  float32Bytes,
  joinBody,
  readBytesElements,
  splitBody,
  writeBytesElements,
} from "./binary.ts";
import { V2Error } from "./errors.ts";

const enc = new TextEncoder();

Deno.test("BYTES elements round-trip through their length-prefixed form, empty ones included", () => {
  const items = [enc.encode("a"), new Uint8Array(0), enc.encode("0.5:3:Dress")];
  const raw = writeBytesElements(items);
  assert.equal(raw.length, 4 * 3 + 1 + 0 + 11);
  assert.deepEqual(new DataView(raw.buffer).getUint32(0, true), 1);
  assert.deepEqual(readBytesElements(raw, "x"), items);
});

Deno.test("readBytesElements() names the element whose prefix or bytes are cut short", () => {
  const raw = writeBytesElements([enc.encode("abc"), enc.encode("de")]);
  assert.throws(
    () => readBytesElements(raw.subarray(0, raw.length - 1), "in"),
    /in: element 1 declares 2 bytes; fewer remain/,
  );
  assert.throws(
    () => readBytesElements(raw.subarray(0, 9), "in"),
    /in: element 1 has a truncated 4-byte length prefix/,
  );
});

Deno.test("FP32 bytes are little-endian and round-trip exactly; a partial element is an error", () => {
  const a = Float32Array.from([0, 1, -2.5, 1 / 3, 3.4e38]);
  const b = float32Bytes(a);
  assert.deepEqual(Array.from(b.subarray(4, 8)), [0, 0, 0x80, 0x3f]); // 1.0f
  assert.deepEqual(bytesFloat32(b, "x"), a);
  assert.throws(
    () => bytesFloat32(b.subarray(0, 6), "inputs[0]"),
    /inputs\[0\]: holds 6 bytes, not a whole number/,
  );
});

Deno.test("splitBody() and joinBody() agree; a header length beyond the body is a 400", () => {
  const { body, headerLength } = joinBody({ a: 1 }, [new Uint8Array([7, 8])]);
  const { json, binary } = splitBody(body, String(headerLength));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(json)), { a: 1 });
  assert.deepEqual(Array.from(binary), [7, 8]);
  assert.equal(splitBody(body, null).json, body);
  for (const bad of ["99", "-1", "x"]) {
    assert.throws(() => splitBody(body, bad), (e) => e instanceof V2Error && e.status === 400);
  }
});

Deno.test("BinaryReader hands out consecutive slices and reports bytes nobody claimed", () => {
  const r = new BinaryReader(new Uint8Array([1, 2, 3, 4, 5]));
  assert.deepEqual(Array.from(r.take(2, "a")), [1, 2]);
  assert.deepEqual(Array.from(r.take(1, "b")), [3]);
  assert.throws(
    () => r.take(3, "inputs[0]"),
    /inputs\[0\]\.parameters\.binary_data_size: is 3 bytes but only 2/,
  );
  assert.throws(() => r.finish(), /2 binary bytes follow the JSON header/);
  assert.throws(() => new BinaryReader(new Uint8Array(1)).take(-1, "c"), /must be a byte count/);
});
