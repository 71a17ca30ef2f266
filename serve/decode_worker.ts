/**
 * The decode pool's worker (serve/decode_pool.ts): PNG/JPEG bytes -> 784 model floats, off the
 * HTTP thread. Errors go back as their name, kind and message, so the HTTP side maps them to
 * the same statuses as an inline decode.
 */
/// <reference lib="deno.worker" />
import { decodeImage, type DecodeOptions, ImageCodecError } from "../common/image_codec.ts";
import { preprocess, type PreprocessMode } from "../common/preprocess.ts";

export interface DecodeJob {
  id: number;
  bytes: Uint8Array;
  opts: DecodeOptions;
  mode: PreprocessMode;
}

self.onmessage = (e: MessageEvent<DecodeJob>) => {
  const { id, bytes, opts, mode } = e.data;
  try {
    const x = preprocess(decodeImage(bytes, opts), mode);
    self.postMessage({ id, x }, [x.buffer as ArrayBuffer]);
  } catch (err) {
    const e1 = err as Error;
    self.postMessage({
      id,
      error: {
        name: e1.name,
        kind: err instanceof ImageCodecError ? err.kind : undefined,
        message: e1.message,
      },
    });
  }
};
