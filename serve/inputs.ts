/**
 * Request bodies -> model input. Reads the body under a byte limit and a deadline (body.ts),
 * picks the parser by
 * Content-Type (PNG/JPEG, raw N x 784 bytes, JSON pixels or base64 images, multipart files),
 * checks the batch size before decoding, checks every image's declared size before decoding
 * it, and runs common/preprocess.ts. Every failure is an ApiError with a 4xx status: 400 for
 * bodies that do not parse, 413 for too many bytes/pixels/images, 415 for unsupported types,
 * 422 for well-formed bodies with wrong counts or values.
 */
import { DEFAULT_MAX_DECODED_BYTES, readImageHeader } from "../common/image_codec.ts";
import { PIXELS } from "../common/labels.ts";
import { normalizePixels, type PreprocessMode } from "../common/preprocess.ts";
import { mediaType, readBody } from "./body.ts";
import type { DecodePool } from "./decode_pool.ts";
import { ApiError } from "./errors.ts";
import { imageToInputAsync } from "./image_input.ts";
import { decodeBase64 } from "../common/base64.ts";

export { imageToInput, INLINE_DECODE_BYTES } from "./image_input.ts";

export interface InputLimits {
  maxBodyBytes: number;
  maxPixels: number;
  maxBatch: number;
  /** Most decoded bytes per image and per request (default DEFAULT_MAX_DECODED_BYTES). */
  maxDecodedBytes?: number;
  /** A body must arrive within this many ms (408 after); 0 or unset: no deadline. */
  bodyTimeoutMs?: number;
  /** Where images above INLINE_DECODE_BYTES decode (off the HTTP thread); unset: inline. */
  decoder?: DecodePool;
}

/** Model input: `count` images of 784 floats in [0, 1], light on dark, row-major. */
export interface ImageBatch {
  images: Float32Array;
  count: number;
}

export const ACCEPTED_TYPES = [
  "image/png",
  "image/jpeg",
  "application/octet-stream",
  "application/json",
  "multipart/form-data",
];

export { mediaType, readBody } from "./body.ts";

function checkBatch(count: number, limits: InputLimits): void {
  if (count === 0) throw new ApiError(400, "empty_batch", "The request holds no images");
  if (count > limits.maxBatch) {
    throw new ApiError(
      413,
      "batch_too_large",
      `The request holds ${count} images; at most ${limits.maxBatch} are accepted per request (split the batch)`,
    );
  }
}

async function fromImages(
  list: Uint8Array[],
  names: string[],
  limits: InputLimits,
  mode: PreprocessMode,
): Promise<ImageBatch> {
  checkBatch(list.length, limits);
  // The limits also bound the whole request: 256 flat 25-megapixel PNGs fit in a few hundred
  // KB, and decoding them one after the other would still cost minutes of CPU.
  let total = 0, decoded = 0;
  const sizes = list.map((b) => {
    try {
      const h = readImageHeader(b);
      total += h.width * h.height;
      decoded += h.decodedBytes;
      return h.decodedBytes;
    } catch {
      return 0; // undecodable headers are reported with their image's name below
    }
  });
  if (list.length > 1 && total > limits.maxPixels) {
    throw new ApiError(
      413,
      "image_too_large",
      `The ${list.length} images declare ${total} pixels in total, above the per-request limit of ${limits.maxPixels}`,
    );
  }
  const maxDecoded = limits.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES;
  if (list.length > 1 && decoded > maxDecoded) {
    throw new ApiError(
      413,
      "image_too_large",
      `The ${list.length} images decode to ${decoded} bytes in total, above the per-request limit of ${maxDecoded}`,
    );
  }
  const images = new Float32Array(list.length * PIXELS);
  for (let i = 0; i < list.length; i++) {
    images.set(await imageToInputAsync(list[i], sizes[i], names[i], limits, mode), i * PIXELS);
  }
  return { images, count: list.length };
}

function fromOctets(body: Uint8Array, limits: InputLimits): ImageBatch {
  if (body.length === 0) {
    throw new ApiError(400, "empty_batch", "The request body is empty; send N x 784 bytes");
  }
  if (body.length % PIXELS !== 0) {
    throw new ApiError(
      422,
      "bad_pixel_count",
      `application/octet-stream bodies hold N x ${PIXELS} bytes (28x28 uint8 per image); got ${body.length} bytes`,
    );
  }
  const count = body.length / PIXELS;
  checkBatch(count, limits);
  return { images: normalizePixels(body), count };
}

/** A base64 string or data: URL -> bytes; 400 bad_base64 names the field otherwise. */
function base64Field(s: string, what: string): Uint8Array {
  try {
    return decodeBase64(s.startsWith("data:") ? s.slice(s.indexOf(",") + 1) : s);
  } catch {
    throw new ApiError(400, "bad_base64", `${what} is not valid base64`);
  }
}

function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (e) {
    throw new ApiError(400, "bad_json", `Request body is not valid JSON: ${(e as Error).message}`);
  }
}

async function fromJson(
  body: Uint8Array,
  limits: InputLimits,
  mode: PreprocessMode,
): Promise<ImageBatch> {
  const doc = parseJson(body);
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new ApiError(
      400,
      "bad_json_shape",
      'JSON body must be an object: {"pixels": [[784 numbers 0-255], ...]} or {"images": ["<base64 PNG/JPEG>", ...]}',
    );
  }
  const o = doc as Record<string, unknown>;
  const hasPixels = "pixels" in o, hasImages = "images" in o;
  if (hasPixels === hasImages) {
    throw new ApiError(
      400,
      "bad_json_shape",
      'JSON body must have exactly one of "pixels" (arrays of 784 numbers 0-255) or "images" (base64 PNG/JPEG strings)',
    );
  }
  if (hasImages) {
    const list = o.images;
    if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) {
      throw new ApiError(400, "bad_json_shape", '"images" must be an array of base64 strings');
    }
    checkBatch(list.length, limits);
    return await fromImages(
      list.map((s, i) => base64Field(s as string, `images[${i}]`)),
      list.map((_, i) => `images[${i}]`),
      limits,
      mode,
    );
  }
  const rows = o.pixels;
  if (!Array.isArray(rows) || rows.some((r) => !Array.isArray(r))) {
    throw new ApiError(
      400,
      "bad_json_shape",
      '"pixels" must be an array of arrays, one array of 784 numbers (0-255) per image',
    );
  }
  checkBatch(rows.length, limits);
  const images = new Float32Array(rows.length * PIXELS);
  (rows as unknown[][]).forEach((row, i) => {
    if (row.length !== PIXELS) {
      throw new ApiError(
        422,
        "bad_pixel_count",
        `pixels[${i}] has ${row.length} values; each image needs ${PIXELS} (28x28, row-major)`,
      );
    }
    for (let j = 0; j < PIXELS; j++) {
      const v = row[j];
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 255) {
        throw new ApiError(
          422,
          "bad_pixel_value",
          `pixels[${i}][${j}] is ${JSON.stringify(v)}; pixels must be finite numbers in 0..255`,
        );
      }
    }
    normalizePixels(row as number[], images.subarray(i * PIXELS, (i + 1) * PIXELS));
  });
  return { images, count: rows.length };
}

async function fromMultipart(
  body: Uint8Array,
  contentType: string,
  limits: InputLimits,
  mode: PreprocessMode,
): Promise<ImageBatch> {
  let form: FormData;
  try {
    // The body was already read under the byte limit; let the platform parse the parts.
    form = await new Response(body as Uint8Array<ArrayBuffer>, {
      headers: { "content-type": contentType },
    }).formData();
  } catch (e) {
    throw new ApiError(
      400,
      "bad_multipart",
      `Cannot parse multipart/form-data body: ${(e as Error).message}`,
    );
  }
  const files: { name: string; file: Blob }[] = [];
  for (const [field, value] of form.entries()) {
    if (typeof value !== "string") {
      files.push({ name: `part "${field}" (${(value as File).name || "unnamed"})`, file: value });
    }
  }
  if (files.length === 0) {
    throw new ApiError(
      400,
      "empty_batch",
      "The multipart body holds no file parts; attach images as files",
    );
  }
  checkBatch(files.length, limits);
  const bytes = await Promise.all(
    files.map(async (f) => new Uint8Array(await f.file.arrayBuffer())),
  );
  return await fromImages(bytes, files.map((f) => f.name), limits, mode);
}

/** Parses the `preprocess` query parameter. */
export function parsePreprocessMode(v: string | undefined): PreprocessMode {
  if (v === undefined || v === "" || v === "auto") return "auto";
  if (v === "none") return "none";
  throw new ApiError(
    400,
    "bad_parameter",
    `preprocess must be "auto" or "none", got ${JSON.stringify(v)}`,
  );
}

/**
 * One image from a request whose endpoint takes exactly one (reconstruct, preprocess): its
 * preprocessing mode comes from ?preprocess=, and a batch is a 422 naming the route.
 */
export async function readOneImage(
  req: Request,
  limits: InputLimits,
  route: string,
): Promise<Float32Array> {
  const mode = parsePreprocessMode(new URL(req.url).searchParams.get("preprocess") ?? undefined);
  const batch = await readImageBatch(req, limits, mode);
  if (batch.count !== 1) {
    throw new ApiError(
      422,
      "one_image_only",
      `${route} takes exactly one image, got ${batch.count}`,
    );
  }
  return batch.images;
}

/** Reads and parses a request into model input according to its Content-Type. */
export async function readImageBatch(
  req: Request,
  limits: InputLimits,
  mode: PreprocessMode,
): Promise<ImageBatch> {
  const contentType = req.headers.get("content-type") ?? "";
  const type = mediaType(contentType);
  if (!type) {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `Content-Type is required; send one of ${ACCEPTED_TYPES.join(", ")}`,
    );
  }
  const known = type === "image/png" || type === "image/jpeg" || type === "image/jpg" ||
    type === "application/octet-stream" ||
    type === "application/json" || type === "multipart/form-data";
  if (!known) {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `Content-Type ${type} is not supported; send one of ${ACCEPTED_TYPES.join(", ")}`,
    );
  }
  const body = await readBody(req, limits.maxBodyBytes, limits.bodyTimeoutMs);
  switch (type) {
    case "application/octet-stream":
      return fromOctets(body, limits);
    case "application/json":
      return await fromJson(body, limits, mode);
    case "multipart/form-data":
      return await fromMultipart(body, contentType, limits, mode);
    default:
      if (body.length === 0) {
        throw new ApiError(400, "empty_batch", `The request body is empty; send one ${type} image`);
      }
      return await fromImages([body], ["the image"], limits, mode);
  }
}

/** For /v1/decode: {"latent": [L finite numbers]}. */
export async function readLatent(
  req: Request,
  limits: InputLimits,
  L: number,
): Promise<Float32Array> {
  const type = mediaType(req.headers.get("content-type"));
  if (type !== "application/json") {
    throw new ApiError(
      415,
      "unsupported_media_type",
      `/v1/decode takes application/json {"latent": [${L} numbers]}, got ${
        type || "no Content-Type"
      }`,
    );
  }
  const doc = parseJson(await readBody(req, limits.maxBodyBytes, limits.bodyTimeoutMs));
  const latent = (doc as Record<string, unknown> | null)?.latent;
  if (typeof doc !== "object" || doc === null || Array.isArray(doc) || !Array.isArray(latent)) {
    throw new ApiError(400, "bad_json_shape", `JSON body must be {"latent": [${L} numbers]}`);
  }
  if (latent.length !== L) {
    throw new ApiError(
      422,
      "bad_latent_length",
      `"latent" has ${latent.length} values; this model's latent size is ${L}`,
    );
  }
  const z = new Float32Array(L);
  latent.forEach((v, i) => {
    // fround: 1e300 is a finite double but Infinity once it becomes the model's float32 input.
    if (typeof v !== "number" || !Number.isFinite(Math.fround(v))) {
      throw new ApiError(
        422,
        "bad_latent_value",
        `latent[${i}] is ${JSON.stringify(v)}; values must be finite float32 numbers`,
      );
    }
    z[i] = v;
  });
  return z;
}
