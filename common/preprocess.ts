/**
 * The one preprocessing definition: any decoded image -> 28x28 float pixels in [0, 1], object
 * light on a dark background (Fashion-MNIST polarity), row-major. Pure TypeScript with no tf or
 * runtime imports, so the trainer, the server, the tests and the browser page share it.
 *
 * For photos it follows the dataset authors' own recipe: to grey, trim the plain background,
 * fit the longest edge to 28, centre on a 28x28 canvas, invert when the background is light;
 * then stretch the contrast so the brightest pixel is white, as in the dataset.
 */
import { IMAGE_SIZE, PIXELS } from "./labels.ts";

/** A decoded 8-bit image; channels 1 = grey, 2 = grey+alpha, 3 = RGB, 4 = RGBA. */
export interface RawImage {
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
  data: Uint8Array | Uint8ClampedArray;
}

export type PreprocessMode = "auto" | "none";

export class PreprocessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PreprocessError";
  }
}

/** uint8 pixels (any count) -> float32 in [0, 1]. The dataset's and the service's normalisation. */
export function normalizePixels<
  T extends Float32Array<ArrayBufferLike> = Float32Array<ArrayBuffer>,
>(u8: ArrayLike<number>, out: T = new Float32Array(u8.length) as T): T {
  for (let i = 0; i < u8.length; i++) out[i] = u8[i] / 255;
  return out;
}

/**
 * Luma in 0..255 as float. Transparent pixels are composited over white, since a product
 * cut-out with an alpha channel is a dark-on-white photo once flattened.
 */
export function toGrey(img: RawImage): Float32Array {
  const { width, height, channels, data } = img;
  const n = width * height;
  if (data.length < n * channels) {
    throw new PreprocessError(
      `image data holds ${data.length} bytes, ${width}x${height}x${channels} needs ${n * channels}`,
    );
  }
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * channels;
    let g: number;
    let a = 255;
    if (channels <= 2) {
      g = data[o];
      if (channels === 2) a = data[o + 1];
    } else {
      g = 0.299 * data[o] + 0.587 * data[o + 1] + 0.114 * data[o + 2];
      if (channels === 4) a = data[o + 3];
    }
    out[i] = a === 255 ? g : (g * a + 255 * (255 - a)) / 255;
  }
  return out;
}

function isGreyscale(img: RawImage): boolean {
  if (img.channels <= 2) return true;
  const { data, channels } = img;
  for (let i = 0; i < img.width * img.height; i++) {
    const o = i * channels;
    if (data[o] !== data[o + 1] || data[o] !== data[o + 2]) return false;
  }
  return true;
}

/** Median of the one-pixel border: the plain background of a product photo. */
function borderMedian(g: Float32Array, w: number, h: number): number {
  const v: number[] = [];
  for (let x = 0; x < w; x++) v.push(g[x], g[(h - 1) * w + x]);
  for (let y = 1; y < h - 1; y++) v.push(g[y * w], g[y * w + w - 1]);
  v.sort((a, b) => a - b);
  return v[v.length >> 1];
}

/**
 * Area-average resampling (separable): each output pixel is the coverage-weighted mean of the
 * source pixels under it. Exact for downscaling, which is the common case (photos -> 28).
 */
export function resizeArea(
  src: Float32Array,
  sw: number,
  sh: number,
  dw: number,
  dh: number,
): Float32Array {
  const tmp = new Float32Array(dw * sh);
  const sx = sw / dw;
  for (let x = 0; x < dw; x++) {
    const x0 = x * sx, x1 = x0 + sx;
    for (let y = 0; y < sh; y++) {
      let acc = 0;
      for (let i = Math.floor(x0); i < Math.ceil(x1) && i < sw; i++) {
        const cover = Math.min(x1, i + 1) - Math.max(x0, i);
        acc += src[y * sw + i] * cover;
      }
      tmp[y * dw + x] = acc / sx;
    }
  }
  const out = new Float32Array(dw * dh);
  const sy = sh / dh;
  for (let y = 0; y < dh; y++) {
    const y0 = y * sy, y1 = y0 + sy;
    for (let x = 0; x < dw; x++) {
      let acc = 0;
      for (let j = Math.floor(y0); j < Math.ceil(y1) && j < sh; j++) {
        const cover = Math.min(y1, j + 1) - Math.max(y0, j);
        acc += tmp[j * dw + x] * cover;
      }
      out[y * dw + x] = acc / sy;
    }
  }
  return out;
}

/** How far (0..255) a pixel must stand from the background to count as object when trimming. */
const TRIM_THRESHOLD = 24;

/** The dataset's recipe on an arbitrary grey image; returns 784 floats in [0, 1]. */
function fromPhoto(g: Float32Array, w: number, h: number): Float32Array {
  let bg = borderMedian(g, w, h);
  if (bg > 127) {
    for (let i = 0; i < g.length; i++) g[i] = 255 - g[i];
    bg = 255 - bg;
  }
  // Remove the background level so the canvas around the object is black, as in the dataset.
  const scale = 255 / Math.max(1, 255 - bg);
  let x0 = w, y0 = h, x1 = -1, y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = g[y * w + x] - bg;
      g[y * w + x] = Math.max(0, v) * scale;
      if (v > TRIM_THRESHOLD) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  if (x1 < 0) { // nothing stands out: keep the whole frame
    x0 = 0, y0 = 0, x1 = w - 1, y1 = h - 1;
  }
  const cw = x1 - x0 + 1, ch = y1 - y0 + 1;
  const crop = new Float32Array(cw * ch);
  for (let y = 0; y < ch; y++) {
    crop.set(g.subarray((y0 + y) * w + x0, (y0 + y) * w + x0 + cw), y * cw);
  }
  const s = IMAGE_SIZE / Math.max(cw, ch);
  const dw = Math.max(1, Math.min(IMAGE_SIZE, Math.round(cw * s)));
  const dh = Math.max(1, Math.min(IMAGE_SIZE, Math.round(ch * s)));
  const small = resizeArea(crop, cw, ch, dw, dh);
  // Stretch so the brightest pixel is white: dataset images use the full 0..255 range, and a
  // grey garment shot on white would otherwise look faint to the model.
  let peak = 0;
  for (let i = 0; i < small.length; i++) if (small[i] > peak) peak = small[i];
  const gain = peak > TRIM_THRESHOLD ? 255 / peak : 1;
  for (let i = 0; i < small.length; i++) small[i] *= gain;
  const out = new Float32Array(PIXELS);
  const ox = (IMAGE_SIZE - dw) >> 1, oy = (IMAGE_SIZE - dh) >> 1;
  for (let y = 0; y < dh; y++) {
    for (let x = 0; x < dw; x++) {
      out[(oy + y) * IMAGE_SIZE + ox + x] = Math.min(1, Math.max(0, small[y * dw + x] / 255));
    }
  }
  return out;
}

/**
 * Any decoded image -> the model's input (784 floats in [0, 1], light on dark).
 * mode "auto": a 28x28 grey image is used as is; anything else follows the dataset's recipe.
 * mode "none": the image must already be 28x28; it is only converted to grey.
 */
export function preprocess(img: RawImage, mode: PreprocessMode = "auto"): Float32Array {
  if (!(img.width > 0 && img.height > 0)) {
    throw new PreprocessError(`image has no pixels (${img.width}x${img.height})`);
  }
  const is28 = img.width === IMAGE_SIZE && img.height === IMAGE_SIZE;
  if (mode === "none" && !is28) {
    throw new PreprocessError(
      `preprocess=none needs a 28x28 image, got ${img.width}x${img.height}`,
    );
  }
  const g = toGrey(img);
  if (is28 && (mode === "none" || isGreyscale(img))) {
    for (let i = 0; i < g.length; i++) g[i] /= 255;
    return g;
  }
  return fromPhoto(g, img.width, img.height);
}

/** 784 floats in [0, 1] -> 784 bytes (for PNG output and probe sets). */
export function toBytes(px: ArrayLike<number>, out = new Uint8Array(px.length)): Uint8Array {
  for (let i = 0; i < px.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, px[i])) * 255);
  return out;
}
