/**
 * One PNG/JPEG image -> the 784 model floats, with codec and preprocessing failures mapped to
 * the API's 4xx: inline for small images, in the decode pool (serve/decode_pool.ts) for those
 * whose decoded size is above INLINE_DECODE_BYTES, so a large image never blocks the HTTP
 * thread. The limits are checked from the header before anything is decoded.
 */
import {
  decodeImage,
  type DecodeOptions,
  DEFAULT_MAX_DECODED_BYTES,
  ImageCodecError,
} from "../common/image_codec.ts";
import {
  preprocess,
  PreprocessError,
  type PreprocessMode,
  type RawImage,
} from "../common/preprocess.ts";
import { ApiError } from "./errors.ts";
import type { InputLimits } from "./inputs.ts";

/**
 * Images decoding to at most this many bytes decode on the HTTP thread: below it a decode
 * costs less than the round trip to a worker, above it more than other requests should wait.
 */
export const INLINE_DECODE_BYTES = 1 << 20;

/** A codec or preprocessing failure as the 4xx the API answers. */
function decodeError(e: unknown, what: string): ApiError {
  if (e instanceof ImageCodecError) {
    const status = e.kind === "too-large" ? 413 : e.kind === "unsupported" ? 415 : 400;
    const code = e.kind === "too-large"
      ? "image_too_large"
      : e.kind === "unsupported"
      ? "unsupported_image"
      : "bad_image";
    return new ApiError(status, code, `Cannot decode ${what}: ${e.message}`);
  }
  if (e instanceof PreprocessError) {
    return new ApiError(422, "bad_image", `Cannot preprocess ${what}: ${e.message}`);
  }
  return new ApiError(400, "bad_image", `Cannot decode ${what}: ${(e as Error).message}`);
}

function decodeOptions(limits: InputLimits): DecodeOptions {
  return {
    maxPixels: limits.maxPixels,
    maxDecodedBytes: limits.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES,
  };
}

/** PNG/JPEG bytes -> 784 model floats, mapping codec and preprocessing failures to 4xx. */
export function imageToInput(
  bytes: Uint8Array,
  what: string,
  limits: InputLimits,
  mode: PreprocessMode,
): Float32Array {
  let img: RawImage;
  try {
    img = decodeImage(bytes, decodeOptions(limits));
  } catch (e) {
    throw decodeError(e, what);
  }
  try {
    return preprocess(img, mode);
  } catch (e) {
    if (e instanceof PreprocessError) throw decodeError(e, what);
    throw e;
  }
}

/** As imageToInput, but large images decode in the pool, off the HTTP thread. */
export async function imageToInputAsync(
  bytes: Uint8Array,
  decodedBytes: number,
  what: string,
  limits: InputLimits,
  mode: PreprocessMode,
): Promise<Float32Array> {
  if (!limits.decoder || decodedBytes <= INLINE_DECODE_BYTES) {
    return imageToInput(bytes, what, limits, mode);
  }
  try {
    return await limits.decoder.decode(bytes, decodeOptions(limits), mode);
  } catch (e) {
    throw decodeError(e, what);
  }
}
