/**
 * Base64 for bytes, on the runtime's own atob/btoa so it works in Deno, Node and browsers:
 * encoding in chunks (String.fromCharCode takes a bounded number of arguments) and decoding
 * with an error that says what was wrong instead of atob's bare DOMException.
 */

/** Bytes -> standard base64 (with padding). */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Standard base64 -> bytes; whitespace is ignored, anything else invalid throws a TypeError. */
export function decodeBase64(b64: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(b64.replace(/\s+/g, ""));
  } catch {
    throw new TypeError(
      `Cannot decode base64: ${b64.length} characters that are not valid base64 ` +
        "(A-Z a-z 0-9 + / with = padding)",
    );
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
