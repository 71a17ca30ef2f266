/**
 * The one definition of every architecture: the convolutional VAE (encoder, decoder, loss) and
 * the heads (logistic regression and a small MLP on the latent or the encoder's hidden features;
 * the multi-layer CNN on pixels has its home in ./model_cnn.ts). Pure factories taking a config; training, export, experiments and tests all build
 * models here, tests with tiny configs. Layouts are tfjs-native NHWC; the exporter converts.
 *
 * Every classifier outputs logits (no softmax layer), so the losses can use the stable
 * log-softmax form; the ONNX exporter appends the Softmax.
 */
import * as tf from "@tensorflow/tfjs";
import { IMAGE_SIZE, NUM_CLASSES } from "../common/labels.ts";
import { normalizePixels } from "../common/preprocess.ts";

export interface VaeConfig {
  /** Latent dimensions L; the encoder's last dense layer has 2L units (mu, log-variance). */
  latent: number;
  /** Filters of the 3 encoder convs (3x3, strides 2, 2, 1, same, relu): 28 -> 14 -> 7 -> 7. */
  conv: [number, number, number];
  /** Units of the encoder's hidden dense layer. */
  encDense: number;
  /** Units of the decoder's first two dense layers; the third has 7*7*conv[2]. */
  decDense: [number, number];
  /** Filters of the first two transposed convs (strides 2, 2); the third has 1 filter, stride 1. */
  deconv: [number, number];
  /** Kernel size of every conv and transposed conv. */
  kernel: number;
  /** Seeds the weight initialisers; the same seed gives the same initial weights. */
  seed: number;
  /**
   * Batch normalisation after each encoder conv (conv without bias or activation -> BN -> relu).
   * Absent means false, so configs saved before the key load as the same model.
   */
  batchNorm?: boolean;
}

/** The reference VAE of the study and of ../notes (latent 4). */
export const REFERENCE_VAE: Readonly<VaeConfig> = Object.freeze({
  latent: 4,
  conv: [32, 64, 64],
  encDense: 128,
  decDense: [128, 256],
  deconv: [64, 32],
  kernel: 3,
  seed: 1,
}) as VaeConfig;

const VAE_KEYS = [...Object.keys(REFERENCE_VAE), "batchNorm"];

/** Fills defaults and rejects unknown keys (a typo must not silently train another model). */
export function vaeConfig(
  over: Partial<VaeConfig> = {},
  base: VaeConfig = REFERENCE_VAE,
): VaeConfig {
  for (const k of Object.keys(over)) {
    if (!VAE_KEYS.includes(k)) {
      throw new Error(`Unknown VAE config key "${k}" (known: ${VAE_KEYS.join(", ")})`);
    }
  }
  const c = { ...base, ...over } as VaeConfig;
  if (!Number.isInteger(c.latent) || c.latent < 1) {
    throw new Error(`VAE latent must be a positive integer, got ${c.latent}`);
  }
  if (c.batchNorm !== undefined && typeof c.batchNorm !== "boolean") {
    throw new Error(`VAE batchNorm must be true or false, got ${JSON.stringify(c.batchNorm)}`);
  }
  return c;
}

/**
 * `cfg` with the encoder widened by `factor`: its convs' filters and hidden dense units (and so
 * the decoder's last dense layer, 7*7*conv[2]) times factor, rounded. The latent stays.
 */
export function widenEncoder(cfg: VaeConfig, factor: number): VaeConfig {
  if (!(factor > 0) || !Number.isFinite(factor)) {
    throw new Error(`Encoder width factor must be a positive number, got ${factor}`);
  }
  const w = (n: number) => Math.max(1, Math.round(n * factor));
  return { ...cfg, conv: cfg.conv.map(w) as VaeConfig["conv"], encDense: w(cfg.encDense) };
}

/**
 * The reference network with every width divided by 8 and a 2-d latent (its kernel and seed):
 * a few thousand weights, for tests that must train in seconds.
 */
export const TINY_VAE: Readonly<VaeConfig> = Object.freeze(vaeConfig({
  latent: 2,
  conv: [4, 8, 8],
  encDense: 16,
  decDense: [16, 32],
  deconv: [8, 4],
}));

const STRIDES = [2, 2, 1] as const;
/**
 * The moving statistics keep momentum^t of their initial values (mean 0, variance 1) after t
 * steps. Keras's 0.99 leaves that start dominant for hundreds of steps, far longer than a short
 * run, when the conv outputs' variance is orders of magnitude below 1; 0.9 (PyTorch's default)
 * forgets it within tens of steps.
 */
const BN_MOMENTUM = 0.9;
const FEATURE = 7; // 28 / 2 / 2

function init(seed: number) {
  return tf.initializers.glorotUniform({ seed });
}

/**
 * Encoder q(z|x): [N,28,28,1] in [0,1] -> [N, 2L] = concat(mu, logvar). Deterministic at
 * inference (batch norm, if on, then uses its moving statistics). With batch norm the convs have
 * no bias: BN's beta replaces it, and a bias BN subtracts out again gets only float-noise
 * gradients, which Adam's normalisation would turn into a random walk.
 */
export function buildEncoder(cfg: VaeConfig): tf.Sequential {
  const m = tf.sequential({ name: "encoder" });
  const bn = cfg.batchNorm === true;
  cfg.conv.forEach((filters, i) => {
    m.add(tf.layers.conv2d({
      ...(i === 0 ? { inputShape: [IMAGE_SIZE, IMAGE_SIZE, 1] } : {}),
      filters,
      kernelSize: cfg.kernel,
      strides: STRIDES[i],
      padding: "same",
      activation: bn ? "linear" : "relu",
      ...(bn ? { useBias: false } : {}),
      kernelInitializer: init(cfg.seed * 1000 + i),
      name: `enc_conv${i + 1}`,
    }));
    if (bn) {
      m.add(tf.layers.batchNormalization({ momentum: BN_MOMENTUM, name: `enc_bn${i + 1}` }));
      m.add(tf.layers.activation({ activation: "relu", name: `enc_relu${i + 1}` }));
    }
  });
  m.add(tf.layers.flatten({ name: "enc_flatten" }));
  m.add(
    tf.layers.dense({
      units: cfg.encDense,
      activation: "relu",
      kernelInitializer: init(cfg.seed * 1000 + 10),
      name: "enc_dense1",
    }),
  );
  m.add(
    tf.layers.dense({
      units: 2 * cfg.latent,
      kernelInitializer: init(cfg.seed * 1000 + 11),
      name: "enc_moments",
    }),
  );
  return m;
}

/** Decoder p(x|z): [N, L] -> [N,28,28,1] Bernoulli logits. */
export function buildDecoder(cfg: VaeConfig): tf.Sequential {
  const m = tf.sequential({ name: "decoder" });
  const units = [cfg.decDense[0], cfg.decDense[1], FEATURE * FEATURE * cfg.conv[2]];
  units.forEach((u, i) => {
    m.add(tf.layers.dense({
      ...(i === 0 ? { inputShape: [cfg.latent] } : {}),
      units: u,
      activation: "relu",
      kernelInitializer: init(cfg.seed * 1000 + 20 + i),
      name: `dec_dense${i + 1}`,
    }));
  });
  m.add(tf.layers.reshape({ targetShape: [FEATURE, FEATURE, cfg.conv[2]], name: "dec_reshape" }));
  const filters = [cfg.deconv[0], cfg.deconv[1], 1];
  filters.forEach((f, i) => {
    m.add(tf.layers.conv2dTranspose({
      filters: f,
      kernelSize: cfg.kernel,
      strides: STRIDES[i],
      padding: "same",
      activation: i < 2 ? "relu" : "linear",
      kernelInitializer: init(cfg.seed * 1000 + 30 + i),
      name: `dec_deconv${i + 1}`,
    }));
  });
  return m;
}

/** Splits the encoder output into (mu, logvar). */
export function splitMoments(
  out: tf.Tensor2D,
  latent: number,
): { mu: tf.Tensor2D; logvar: tf.Tensor2D } {
  const [mu, logvar] = tf.split(out, [latent, latent], 1) as [tf.Tensor2D, tf.Tensor2D];
  return { mu, logvar };
}

/**
 * The VAE's sampling step, z = mu + exp(logvar / 2) * eps, for a given eps ~ N(0, I). Sampling
 * lives only in training code; the training graph (engine/ort_graph/vae_step.ts) mirrors it.
 */
export function sampleLatent(mu: tf.Tensor2D, logvar: tf.Tensor2D, eps: tf.Tensor): tf.Tensor2D {
  return tf.add(mu, tf.mul(tf.exp(tf.mul(logvar, 0.5)), eps)) as tf.Tensor2D;
}

/** The sampling step's eps ~ N(0, I) for n rows under `seed`: the same draw on either engine. */
export function latentNoise(n: number, latent: number, seed?: number): tf.Tensor2D {
  return tf.randomNormal([n, latent], 0, 1, "float32", seed);
}

/** sampleLatent with eps drawn by latentNoise under `seed`. */
export function reparameterize(mu: tf.Tensor2D, logvar: tf.Tensor2D, seed?: number): tf.Tensor2D {
  return tf.tidy(() => sampleLatent(mu, logvar, latentNoise(mu.shape[0], mu.shape[1], seed)));
}

/**
 * Negative ELBO parts, each averaged over the batch: rec = summed binary cross-entropy of the
 * 784 Bernoulli logits (stable form max(l,0) - l*x + log(1+exp(-|l|))); kl = KL(q(z|x) || N(0,I)).
 */
export function vaeLoss(
  x: tf.Tensor,
  logits: tf.Tensor,
  mu: tf.Tensor2D,
  logvar: tf.Tensor2D,
): { total: tf.Scalar; rec: tf.Scalar; kl: tf.Scalar } {
  return tf.tidy(() => {
    const n = x.shape[0]!;
    const x2 = x.reshape([n, -1]);
    const l2 = logits.reshape([n, -1]);
    const bce = tf.add(tf.sub(tf.relu(l2), tf.mul(l2, x2)), tf.softplus(tf.neg(tf.abs(l2))));
    const rec = tf.mean(tf.sum(bce, 1)) as tf.Scalar;
    const klPer = tf.mul(
      -0.5,
      tf.sum(tf.sub(tf.sub(tf.add(1, logvar), tf.square(mu)), tf.exp(logvar)), 1),
    );
    const kl = tf.mean(klPer) as tf.Scalar;
    return { total: tf.add(rec, kl) as tf.Scalar, rec, kl };
  });
}

/** Mean sparse categorical cross-entropy from logits. */
export function classLoss(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const oneHot = tf.oneHot(labels.toInt(), logits.shape[1]);
    return tf.mean(tf.neg(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  });
}

// ---------------------------------------------------------------------------------------------
// Classifiers

export type HeadKind = "logistic" | "mlp";

/**
 * What the served head reads: the latent mean mu, or the encoder's hidden features (the input of
 * its moments layer, encDense units). mu keeps the classifier a function of the latent alone;
 * "hidden" lets it read what the encoder sees before the 2L-unit bottleneck, while mu, the
 * decoder and the ELBO stay those of the VAE.
 */
export type HeadInput = "mu" | "hidden";
export const HEAD_INPUTS: readonly HeadInput[] = ["mu", "hidden"];

export interface HeadConfig {
  kind: HeadKind;
  /** Hidden layer sizes of the MLP head (ignored for logistic). */
  hidden: number[];
  /** Dropout after each hidden layer of the MLP (0 disables; dropout masks are not seeded). */
  dropout: number;
  seed: number;
  /** Classes K the head scores (default 10, Fashion-MNIST's, for configs saved before K). */
  classes?: number;
  /** What the head reads (default "mu", also for configs saved before the key). */
  input?: HeadInput;
}

/** The head's input width: L for mu, the encoder's hidden units for "hidden". */
export function headInputWidth(vae: VaeConfig, head: HeadConfig): number {
  const input = head.input ?? "mu";
  if (!HEAD_INPUTS.includes(input)) {
    throw new Error(`Unknown head input "${input}" (known: ${HEAD_INPUTS.join(", ")})`);
  }
  return input === "hidden" ? vae.encDense : vae.latent;
}

/**
 * The encoder's forward pass split at its moments layer: `hidden` (that layer's input) and
 * `moments` (concat(mu, logvar)). Same numbers as encoder.apply; the head may read either.
 */
export function encodeParts(
  encoder: tf.LayersModel,
  x: tf.Tensor,
  training = false,
): { hidden: tf.Tensor2D; moments: tf.Tensor2D } {
  const layers = encoder.layers;
  let t = x;
  for (const layer of layers.slice(0, -1)) t = layer.apply(t, { training }) as tf.Tensor;
  const moments = layers[layers.length - 1].apply(t, { training }) as tf.Tensor2D;
  return { hidden: t as tf.Tensor2D, moments };
}

/** The head's logits for a split encoder pass: it reads mu (default) or the hidden features. */
export function headLogits(
  head: tf.LayersModel,
  input: HeadInput | undefined,
  parts: { hidden: tf.Tensor2D; mu: tf.Tensor2D },
  training = false,
): tf.Tensor2D {
  const x = input === "hidden" ? parts.hidden : parts.mu;
  return head.apply(x, { training }) as tf.Tensor2D;
}

export const DEFAULT_HEAD: Readonly<HeadConfig> = Object.freeze({
  kind: "mlp",
  hidden: [128, 64],
  dropout: 0,
  seed: 7,
}) as HeadConfig;

/**
 * A classifier on the latent mu (or, with cfg.input "hidden", on the encoder's hidden features;
 * `latent` is then that width: headInputWidth): [N, L] -> [N, K] logits (K = cfg.classes). "logistic" is a single dense layer
 * (multinomial logistic regression, trained by SGD); "mlp" is the study's "simple" network,
 * here a small MLP (dense-relu blocks), trained by Adam. The latent has no spatial order, so
 * a 1-D conv over it would only impose a fake one.
 */
export function buildHead(latent: number, cfg: HeadConfig): tf.Sequential {
  const m = tf.sequential({ name: `head_${cfg.kind}` });
  const hidden = cfg.kind === "logistic" ? [] : cfg.hidden;
  hidden.forEach((units, i) => {
    m.add(
      tf.layers.dense({
        ...(i === 0 ? { inputShape: [latent] } : {}),
        units,
        activation: "relu",
        kernelInitializer: init(cfg.seed * 1000 + i),
        name: `head_dense${i + 1}`,
      }),
    );
    if (cfg.dropout > 0) {
      m.add(tf.layers.dropout({ rate: cfg.dropout, name: `head_dropout${i + 1}` }));
    }
  });
  m.add(
    tf.layers.dense({
      ...(hidden.length === 0 ? { inputShape: [latent] } : {}),
      units: cfg.classes ?? NUM_CLASSES,
      kernelInitializer: init(cfg.seed * 1000 + 99),
      name: "head_logits",
    }),
  );
  return m;
}

/** uint8 rows [n*784] -> float [n,28,28,1] in [0,1]. The trainer's only input conversion. */
export function imagesToTensor(u8: Uint8Array, n: number): tf.Tensor4D {
  return tf.tensor4d(normalizePixels(u8.subarray(0, n * IMAGE_SIZE * IMAGE_SIZE)), [
    n,
    IMAGE_SIZE,
    IMAGE_SIZE,
    1,
  ]);
}
