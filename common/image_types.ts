/**
 * What the image codecs share: the formats, the header a codec reads before decoding anything,
 * and the one error type (its kind tells the service which HTTP status to answer with).
 */
export type ImageFormat = "png" | "jpeg";

/**
 * Why decoding failed; the service maps these to HTTP statuses:
 * "unsupported" -> 415, "malformed" -> 400, "too-large" -> 413.
 */
export type ImageCodecErrorKind = "unsupported" | "malformed" | "too-large";

export class ImageCodecError extends Error {
  constructor(readonly kind: ImageCodecErrorKind, message: string) {
    super(message);
    this.name = "ImageCodecError";
  }
}

export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** Bytes the decoded samples take (bit depth and channels counted), the cost to bound. */
  decodedBytes: number;
}
