/**
 * ONNX export of the trained tfjs models, written directly from TypeScript (no Python, no
 * converter): standard ONNX, opset 13, default-domain ops only, dynamic batch "N", NCHW float
 * input in [0, 1] (light on dark). Three graphs:
 *
 * - serving model: `image` [N,1,28,28] -> `probabilities` [N,K] (softmax of the head's logits
 *   on mu or on the encoder's hidden features), `mu` [N,L], `logvar` [N,L]. Deterministic: the encoder's moments layer is split
 *   into two Gemm; no sampling is exported.
 * - decoder: `z` [N,L] -> `pixels` [N,28,28] = sigmoid(logits), in [0, 1].
 * - pixel classifier (CNN baseline): `image` [N,1,28,28] -> `probabilities` [N,K].
 *
 * Layer conversion (NHWC -> NCHW weight re-layout) lives in _layers.ts; protobuf assembly in
 * _proto.ts. Parity with tfjs is checked by onnx_test.ts.
 */
import type * as tf from "@tensorflow/tfjs";
import { DECODER_IO, SERVING_IO } from "../../bundle/tensors.ts";
import { IMAGE_SIZE } from "../../common/labels.ts";
import type { HeadInput } from "../model.ts";
import { convertLayers, dense, type Value } from "./_layers.ts";
import { GraphBuilder, ONNX_IR_VERSION, ONNX_OPSET } from "./_proto.ts";

export { ONNX_IR_VERSION, ONNX_OPSET };

export { DECODER_IO, SERVING_IO };

const IMAGE_SHAPE_NCHW = ["N", 1, IMAGE_SIZE, IMAGE_SIZE];

function inputShape(model: tf.LayersModel, what: string): number[] {
  const s = model.inputs[0]?.shape;
  if (!s) throw new Error(`ONNX export: ${what} has no input`);
  return s.slice(1) as number[];
}

function expectShape(got: number[], want: number[], what: string): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(
      `ONNX export: ${what} has shape ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`,
    );
  }
}

function lastActivation(model: tf.LayersModel): string {
  const cfg = model.layers[model.layers.length - 1].getConfig() as Record<string, unknown>;
  return String(cfg.activation ?? "linear");
}

/** Converts a classifier's layers from `x` and appends the Softmax that turns logits into probabilities. */
function classifierTail(g: GraphBuilder, model: tf.LayersModel, x: Value, what: string): number {
  if (lastActivation(model) !== "linear") {
    throw new Error(
      `ONNX export: ${what} must output logits (linear last layer), its last activation is "${
        lastActivation(model)
      }"`,
    );
  }
  const logits = convertLayers(g, model.layers, x);
  if (logits.shape.length !== 1) {
    throw new Error(
      `ONNX export: ${what} outputs shape ${JSON.stringify(logits.shape)}, expected [K]`,
    );
  }
  g.op("Softmax", `${model.name}/Softmax`, [logits.name], { axis: -1 }, SERVING_IO.probabilities);
  return logits.shape[0];
}

/**
 * Encoder + classifier head as one serving graph. `latent` is L; the encoder's last layer must be
 * the linear Dense of 2L units (mu then logvar). The head maps [L] (mu) to K logits, or with
 * headInput "hidden" the moments layer's input (the encoder's hidden features).
 */
export function exportServingModel(
  encoder: tf.LayersModel,
  head: tf.LayersModel,
  latent: number,
  headInput: HeadInput = "mu",
): Uint8Array {
  expectShape(inputShape(encoder, "encoder"), [IMAGE_SIZE, IMAGE_SIZE, 1], "encoder input");
  if (headInput === "mu") expectShape(inputShape(head, "head"), [latent], "head input");
  const moments = encoder.layers[encoder.layers.length - 1];
  const mcfg = moments.getConfig() as Record<string, unknown>;
  if (
    moments.getClassName() !== "Dense" || mcfg.units !== 2 * latent ||
    (mcfg.activation ?? "linear") !== "linear"
  ) {
    throw new Error(
      `ONNX export: the encoder's last layer must be a linear Dense of ${
        2 * latent
      } units (mu, logvar), got ${moments.getClassName()} ${moments.name}`,
    );
  }
  const g = new GraphBuilder("fashion_vae_serving");
  const image = g.input(SERVING_IO.input, IMAGE_SHAPE_NCHW);
  const hidden = convertLayers(g, encoder.layers, {
    name: image,
    shape: [IMAGE_SIZE, IMAGE_SIZE, 1],
  }, encoder.layers.length - 1);
  const mu = dense(g, hidden, moments, { columns: [0, latent], output: SERVING_IO.mu });
  dense(g, hidden, moments, { columns: [latent, 2 * latent], output: SERVING_IO.logvar });
  const headIn = headInput === "hidden" ? hidden : mu;
  expectShape(inputShape(head, "head"), headIn.shape, `head input (${headInput})`);
  const K = classifierTail(g, head, headIn, "head");
  g.output(SERVING_IO.probabilities, ["N", K]);
  g.output(SERVING_IO.mu, ["N", latent]);
  g.output(SERVING_IO.logvar, ["N", latent]);
  return g.encode(
    `latent-edge serving model: image [N,1,28,28] in [0,1] -> probabilities [N,${K}], mu/logvar [N,${latent}]`,
  );
}

/** Decoder p(x|z) as a graph: z [N,L] -> pixels [N,28,28] = sigmoid(Bernoulli logits). */
export function exportDecoder(decoder: tf.LayersModel, latent: number): Uint8Array {
  expectShape(inputShape(decoder, "decoder"), [latent], "decoder input");
  if (lastActivation(decoder) !== "linear") {
    throw new Error(
      `ONNX export: the decoder must output logits (linear last layer), its last activation is "${
        lastActivation(decoder)
      }"`,
    );
  }
  const g = new GraphBuilder("fashion_vae_decoder");
  const z = g.input(DECODER_IO.input, ["N", latent]);
  const logits = convertLayers(g, decoder.layers, { name: z, shape: [latent] });
  expectShape(logits.shape, [IMAGE_SIZE, IMAGE_SIZE, 1], "decoder output");
  const p = g.op("Sigmoid", "decoder/Sigmoid", [logits.name]);
  // [N,1,28,28] -> [N,28,28]: with one channel NCHW and NHWC hold the same bytes.
  g.op(
    "Reshape",
    "decoder/ToImage",
    [p, g.int64Init("pixels.shape", [-1, IMAGE_SIZE, IMAGE_SIZE])],
    {},
    DECODER_IO.output,
  );
  g.output(DECODER_IO.output, ["N", IMAGE_SIZE, IMAGE_SIZE]);
  return g.encode(`latent-edge decoder: z [N,${latent}] -> pixels [N,28,28] in [0,1]`);
}

/** The CNN baseline on pixels: image [N,1,28,28] -> probabilities [N,K]. */
export function exportPixelClassifier(cnn: tf.LayersModel): Uint8Array {
  expectShape(
    inputShape(cnn, "pixel classifier"),
    [IMAGE_SIZE, IMAGE_SIZE, 1],
    "pixel classifier input",
  );
  const g = new GraphBuilder("fashion_pixel_cnn");
  const image = g.input(SERVING_IO.input, IMAGE_SHAPE_NCHW);
  const K = classifierTail(
    g,
    cnn,
    { name: image, shape: [IMAGE_SIZE, IMAGE_SIZE, 1] },
    "pixel classifier",
  );
  g.output(SERVING_IO.probabilities, ["N", K]);
  return g.encode(`latent-edge pixel CNN: image [N,1,28,28] in [0,1] -> probabilities [N,${K}]`);
}
