/**
 * The tensor names and shapes of the exported graphs: the exporter writes them, the manifest
 * repeats them, and the server reads them from the manifest (never from here), so a bundle
 * remains the source of truth for the graphs it carries.
 */
import { IMAGE_SIZE } from "../common/labels.ts";

/** Serving model (encoder + classifier): image in; probabilities, mu and log-variance out. */
export const SERVING_IO = Object.freeze({
  input: "image",
  probabilities: "probabilities",
  mu: "mu",
  logvar: "logvar",
});

/** Decoder: a latent vector in, pixels in [0, 1] out. */
export const DECODER_IO = Object.freeze({ input: "z", output: "pixels" });

/** The only input this service understands; a bundle declaring anything else is incompatible. */
export const INPUT_SHAPE: ("N" | number)[] = ["N", 1, IMAGE_SIZE, IMAGE_SIZE];

/** The decoder's output: one 28x28 image per latent vector. */
export const OUTPUT_IMAGE_SHAPE: ("N" | number)[] = ["N", IMAGE_SIZE, IMAGE_SIZE];
