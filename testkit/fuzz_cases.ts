/**
 * The hostile request generators of the fuzz test (tests/service_fuzz_test.ts, sampled in CI)
 * and its full nightly run (scripts/fuzz_service.ts): random bytes, truncated and bit-flipped
 * PNG/JPEG, huge declared dimensions and decoded sizes, wrong JSON shapes, NaN and
 * out-of-range values, wrong content types, random query parameters and methods. Case i of a
 * seed is the same request whatever else runs, and checkAnswer() is the one verdict.
 */
import assert from "node:assert/strict";
import { encodeGreyPng, encodeJpeg, encodePng } from "../common/image_codec.ts";
import { mulberry32 } from "../serve/sampling.ts";
import { encodeBase64 } from "../common/base64.ts";
import { IMAGE_SIZE } from "../common/labels.ts";

// Each case draws from its own generator (seed, index), so any sample of the indices is the
// same cases as in a full run, and one case reruns alone.
let rand = mulberry32(1);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(a: readonly T[]): T => a[int(a.length)];
const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));

const grey28 = Uint8Array.from({ length: 784 }, (_, i) => (i * 13) % 256);
const VALID = {
  png: encodeGreyPng(grey28, IMAGE_SIZE, IMAGE_SIZE),
  rgba: encodePng({ width: 30, height: 20, channels: 4, data: bytes(30 * 20 * 4) }),
  jpeg: encodeJpeg({ width: IMAGE_SIZE, height: IMAGE_SIZE, channels: 1, data: grey28 }, 90),
  photo: encodeJpeg({ width: 64, height: 48, channels: 3, data: bytes(64 * 48 * 3) }, 70),
};
const validImage = () => pick([VALID.png, VALID.rgba, VALID.jpeg, VALID.photo]);

function truncated(): Uint8Array {
  const v = validImage();
  return v.slice(0, int(v.length));
}

function bitFlipped(): Uint8Array {
  const v = validImage().slice();
  for (let k = 1 + int(8); k > 0; k--) v[int(v.length)] ^= 1 << int(8);
  return v;
}

function hugeDims(): Uint8Array {
  const big = () => 1 + int(0xffff) * (1 + int(60000));
  if (rand() < 0.5) {
    const v = VALID.png.slice();
    const dv = new DataView(v.buffer);
    dv.setUint32(16, big() >>> 0), dv.setUint32(20, big() >>> 0);
    return v;
  }
  const v = VALID.jpeg.slice();
  for (let o = 2; o + 9 < v.length;) {
    if (v[o] === 0xff && v[o + 1] === 0xc0) {
      v[o + 5] = int(256), v[o + 6] = int(256), v[o + 7] = int(256), v[o + 8] = int(256);
      break;
    }
    o += 2 + ((v[o + 2] << 8) | v[o + 3]);
  }
  return v;
}

const weirdNumbers = [NaN, Infinity, -1, 256, 1e308, -0, 0.5, "7", null, true, {}, [], "NaN"];

function jsonDoc(): string {
  switch (int(12)) {
    case 0:
      return JSON.stringify({
        pixels: Array.from(
          { length: int(4) },
          () => Array.from({ length: pick([0, 1, 783, 784, 785]) }, () => int(300) - 20),
        ),
      });
    case 1:
      return JSON.stringify({
        pixels: [
          Array.from({ length: 784 }, () => (rand() < 0.01 ? pick(weirdNumbers) : int(256))),
        ],
      });
    case 2:
      return JSON.stringify({
        images: Array.from(
          { length: int(3) },
          () => pick([encodeBase64(bitFlipped()), encodeBase64(truncated()), "%%%", "", 5, null]),
        ),
      });
    case 3:
      return JSON.stringify({ images: [encodeBase64(pick([hugeDims, deepPng])())] });
    case 4:
      return JSON.stringify(
        pick([null, 1, "x", [], [[]], { pixels: null }, { images: {} }, {
          pixels: [[]],
          images: [],
        }, { pixels: "abc" }]),
      );
    case 5:
      return "[".repeat(int(5000)) + "]".repeat(int(5000));
    case 6:
      return JSON.stringify({
        latent: Array.from(
          { length: int(5) },
          () => (rand() < 0.3 ? pick(weirdNumbers) : rand() * 10 - 5),
        ),
      });
    case 7:
      return JSON.stringify({ latent: pick([null, "1,2", {}, [[1, 2]], [1e39, 0]]) });
    case 8:
      return new TextDecoder().decode(bytes(int(200)));
    case 9:
      return '{"pixels": [[' + "1,".repeat(783) + "NaN]]}";
    case 10:
      return JSON.stringify({ images: [encodeBase64(validImage())], pixels: undefined, extra: 1 });
    default:
      return JSON.stringify({ pixels: [Array.from({ length: 784 }, () => int(256))] });
  }
}

function multipart(): { body: BodyInit; contentType: string | null } {
  if (rand() < 0.3) {
    return {
      body: bytes(int(400)),
      contentType: `multipart/form-data; boundary=${pick(["x", "", "----abc"])}`,
    };
  }
  const form = new FormData();
  for (let k = int(4); k > 0; k--) {
    const content = pick([validImage, truncated, bitFlipped, hugeDims, () => bytes(int(300))])();
    form.append(`f${k}`, new Blob([content as Uint8Array<ArrayBuffer>]), `f${k}.bin`);
  }
  if (rand() < 0.3) form.append("text", "hello");
  return { body: form, contentType: null }; // fetch sets the boundary
}

const CONTENT_TYPES = [
  "image/png",
  "image/jpeg",
  "image/jpg",
  "application/octet-stream",
  "application/json",
  "multipart/form-data",
  "text/plain",
  "image/gif",
  "image/webp",
  "",
  "application/x-www-form-urlencoded",
  "IMAGE/PNG; charset=utf-8",
  "*/*",
  "application/json; charset=latin1",
];
const PATHS = ["/v1/classify", "/v1/latent", "/v1/reconstruct", "/v1/decode"];
const OTHER_PATHS = ["/v1/models", "/nope", "/v1/classify/", "/readyz", "/metrics"];
const QUERIES = [
  "",
  "?preprocess=auto",
  "?preprocess=none",
  "?preprocess=",
  "?preprocess=x",
  "?samples=3&seed=1",
  "?samples=9999",
  "?samples=1.5",
  "?seed=abc",
  "?samples=64&seed=4294967295",
];

/** A 16-bit RGBA PNG header within the pixel limit whose samples decode to 200 MB. */
function deepPng(): Uint8Array {
  const v = VALID.png.slice();
  const dv = new DataView(v.buffer);
  dv.setUint32(16, 5000), dv.setUint32(20, 5000);
  v[24] = 16, v[25] = 6;
  return v;
}

export interface FuzzCase {
  path: string;
  init: RequestInit;
  what: string;
}

/** Case `i` of the run seeded `seed`. */
export function fuzzCase(seed: number, i: number): FuzzCase {
  rand = mulberry32((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  return makeCase(i);
}

function makeCase(i: number): FuzzCase {
  // Mostly the endpoints that parse bodies; a few requests probe routing.
  const path = (rand() < 0.9 ? pick(PATHS) : pick(OTHER_PATHS)) + pick(QUERIES);
  const method = rand() < 0.97 ? "POST" : pick(["GET", "PUT", "DELETE", "PATCH"]);
  const kind = int(9);
  let body: BodyInit | Uint8Array | undefined,
    contentType: string | null = pick(CONTENT_TYPES),
    what: string;
  switch (kind) {
    case 0:
      body = bytes(int(3000)), what = "random bytes";
      break;
    case 1:
      body = truncated(),
        what = "truncated image",
        contentType = pick(["image/png", "image/jpeg", contentType]);
      break;
    case 2:
      body = bitFlipped(),
        what = "bit-flipped image",
        contentType = pick(["image/png", "image/jpeg", contentType]);
      break;
    case 3:
      body = rand() < 0.3 ? deepPng() : hugeDims(),
        what = "huge declared dimensions or decoded bytes",
        contentType = pick(["image/png", "image/jpeg"]);
      break;
    case 4:
      body = jsonDoc(),
        what = "JSON",
        contentType = pick(["application/json", "application/json", contentType]);
      break;
    case 5: {
      const m = multipart();
      body = m.body, contentType = m.contentType, what = "multipart";
      break;
    }
    case 6:
      body = bytes(pick([0, 1, 783, 784, 785, 1568, 784 * 300])),
        what = "octets",
        contentType = "application/octet-stream";
      break;
    case 7:
      body = validImage(), what = "valid image, random type";
      break;
    default:
      body = undefined, what = "no body";
  }
  if (method === "GET") body = undefined;
  const headers: Record<string, string> = {};
  if (contentType) headers["Content-Type"] = contentType;
  return {
    path,
    init: { method, headers, body: body as BodyInit },
    what: `#${i} ${method} ${path} ${contentType} ${what}`,
  };
}

/** No 5xx, and every error is exactly {"error": {code, message}}. Returns the status. */
export async function checkAnswer(res: Response, c: FuzzCase): Promise<number> {
  const text = await res.text();
  assert.ok(res.status < 500, `${c.what} -> ${res.status} ${text.slice(0, 300)}`);
  if (res.status >= 400) {
    const body = JSON.parse(text);
    assert.deepEqual(Object.keys(body), ["error"], `${c.what}: error body ${text.slice(0, 200)}`);
    assert.deepEqual(Object.keys(body.error).sort(), ["code", "message"], c.what);
    assert.equal(typeof body.error.code, "string", c.what);
    assert.equal(typeof body.error.message, "string", c.what);
  }
  return res.status;
}
