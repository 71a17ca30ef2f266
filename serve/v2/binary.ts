/**
 * The binary tensor data extension: a body is a JSON header of `Inference-Header-Content-Length`
 * bytes followed by raw tensors, one per input (or output) whose parameters carry
 * `binary_data_size`, in the order they are listed. Fixed-size types are their elements in
 * little-endian order; BYTES elements are each a 4-byte little-endian length and the bytes.
 */
import { badRequest } from "./errors.ts";

export const HEADER_LENGTH = "Inference-Header-Content-Length";

/** Splits a body into its JSON header text and the binary part that follows it. */
export function splitBody(
  body: Uint8Array,
  headerLength: string | null,
): { json: Uint8Array; binary: Uint8Array } {
  if (headerLength === null) return { json: body, binary: body.subarray(body.length) };
  const n = Number(headerLength);
  if (!/^\d+$/.test(headerLength) || n > body.length) {
    throw badRequest(
      HEADER_LENGTH,
      `must be the byte length of the JSON header, at most the body's ${body.length} bytes; got ${
        JSON.stringify(headerLength)
      }`,
    );
  }
  return { json: body.subarray(0, n), binary: body.subarray(n) };
}

/** Hands out consecutive slices of the binary part, and says when some were left unread. */
export class BinaryReader {
  #offset = 0;
  constructor(private readonly bytes: Uint8Array) {}
  take(size: number, field: string): Uint8Array {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw badRequest(`${field}.parameters.binary_data_size`, `must be a byte count, got ${size}`);
    }
    if (this.#offset + size > this.bytes.length) {
      throw badRequest(
        `${field}.parameters.binary_data_size`,
        `is ${size} bytes but only ${this.bytes.length - this.#offset} binary bytes remain`,
      );
    }
    const out = this.bytes.subarray(this.#offset, this.#offset + size);
    this.#offset += size;
    return out;
  }
  finish(): void {
    const left = this.bytes.length - this.#offset;
    if (left > 0) {
      throw badRequest(
        HEADER_LENGTH,
        `${left} binary bytes follow the JSON header that no input's binary_data_size accounts for`,
      );
    }
  }
}

/** BYTES elements from their binary form (length-prefixed). */
export function readBytesElements(raw: Uint8Array, field: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let at = 0; at < raw.length;) {
    if (at + 4 > raw.length) {
      throw badRequest(field, `element ${out.length} has a truncated 4-byte length prefix`);
    }
    const n = dv.getUint32(at, true);
    if (at + 4 + n > raw.length) {
      throw badRequest(field, `element ${out.length} declares ${n} bytes; fewer remain`);
    }
    out.push(raw.subarray(at + 4, at + 4 + n));
    at += 4 + n;
  }
  return out;
}

/** BYTES elements in their binary form. */
export function writeBytesElements(items: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(items.reduce((s, b) => s + 4 + b.length, 0));
  const dv = new DataView(out.buffer);
  let at = 0;
  for (const b of items) {
    dv.setUint32(at, b.length, true);
    out.set(b, at + 4);
    at += 4 + b.length;
  }
  return out;
}

/** Float32 elements as little-endian bytes (a copy). */
export function float32Bytes(a: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) dv.setFloat32(i * 4, a[i], true);
  return out;
}

/** Little-endian float32 bytes -> elements. */
export function bytesFloat32(raw: Uint8Array, field: string): Float32Array {
  if (raw.length % 4 !== 0) {
    throw badRequest(field, `holds ${raw.length} bytes, not a whole number of FP32 elements`);
  }
  const out = new Float32Array(raw.length / 4);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true);
  return out;
}

/** Joins a JSON header and binary parts into one body; returns it and the header's length. */
export function joinBody(
  header: unknown,
  parts: Uint8Array[],
): { body: Uint8Array<ArrayBuffer>; headerLength: number } {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(json.length + parts.reduce((s, p) => s + p.length, 0));
  body.set(json, 0);
  let at = json.length;
  for (const p of parts) {
    body.set(p, at);
    at += p.length;
  }
  return { body, headerLength: json.length };
}

/** A message in the extension's layout (the JSON header, then the parts) with its HTTP headers. */
export function binaryMessage(
  header: unknown,
  parts: Uint8Array[],
): { body: Uint8Array<ArrayBuffer>; headers: Record<string, string> } {
  const { body, headerLength } = joinBody(header, parts);
  const headers = {
    "Content-Type": "application/octet-stream",
    [HEADER_LENGTH]: String(headerLength),
  };
  return { body, headers };
}
