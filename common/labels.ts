/**
 * Fashion-MNIST label names and image geometry. These are the dataset's facts; a served
 * model carries its own label list in its manifest and the server reads it from there.
 */
export const IMAGE_SIZE = 28;
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;
export const NUM_CLASSES = 10;

/** Label names in index order, as published by the dataset authors. */
export const FASHION_LABELS: readonly string[] = Object.freeze([
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
]);
