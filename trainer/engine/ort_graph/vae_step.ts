/**
 * One VAE training step as a graph: the encoder, the reparameterisation, the decoder and the
 * optional joint head forward; the negative ELBO (summed sigmoid BCE + KL) and the head's
 * weighted cross-entropy; their gradients written out by hand, then the backward pass of each
 * model (backward.ts). The loss mirrors trainer/model.ts (sampleLatent, vaeLoss) and
 * trainer/train_step.ts (the joint loss); ../ort_train_test.ts checks the gradients against tfjs.
 */
import type * as tf from "@tensorflow/tfjs";
import { IMAGE_SIZE, PIXELS } from "../../../common/labels.ts";
import type { Value } from "../../export/_layers.ts";
import type { HeadInput } from "../../model.ts";
import { backward } from "./backward.ts";
import { countHits, crossEntropy, finishGraph } from "./finish.ts";
import { TRAIN_IO, type TrainingGraph } from "./io.ts";
import {
  forwardLayers,
  type RecordingBuilder,
  type Shapes,
  startStepGraph,
  type TapeNode,
} from "./tape.ts";

export interface TrainingGraphSpec {
  encoder: tf.Sequential;
  decoder: tf.Sequential;
  head: tf.Sequential | null;
  /** What the head reads (model.ts HeadInput): mu (default) or the encoder's hidden features. */
  headInput?: HeadInput;
  latent: number;
  /** Fixed batch size of the graph. */
  batch: number;
  /**
   * "grads": output the flat gradient (TRAIN_IO.grads). "adam": also take Adam's slots and
   * apply tfjs's Adam update in the graph, outputting the new params and slots instead.
   */
  mode?: "grads" | "adam";
  /** Adam's beta1, beta2, epsilon (adam mode); tf.train.adam's defaults. */
  adam?: { beta1: number; beta2: number; epsilon: number };
}

type Forward = { out: Value; tape: TapeNode[] };

/** Runs the exporter over some layers from `input`; the output and its tape segment. */
type ForwardLayers = (layers: tf.layers.Layer[], input: Value) => Forward;

/**
 * The encoder in two tape segments, split at its moments layer, so the head may read the hidden
 * features (the moments layer's input); one tape for the backward pass, which sums the two
 * gradients reaching the hidden features.
 */
function forwardEncoder(layers: tf.layers.Layer[], x: string, forward: ForwardLayers) {
  const trunk = forward(layers.slice(0, -1), { name: x, shape: [IMAGE_SIZE, IMAGE_SIZE, 1] });
  const moments = forward(layers.slice(-1), trunk.out);
  return { hidden: trunk.out, out: moments.out, tape: [...trunk.tape, ...moments.tape] };
}

/** The encoder, z = mu + exp(logvar / 2) * eps (trainer/model.ts sampleLatent), the decoder. */
function forwardVae(
  g: RecordingBuilder,
  spec: TrainingGraphSpec,
  layersOf: (m: tf.Sequential) => tf.layers.Layer[],
  forward: ForwardLayers,
  shapes: Shapes,
) {
  const { latent: L, batch: B } = spec;
  const x = g.input(TRAIN_IO.x, [B, 1, IMAGE_SIZE, IMAGE_SIZE]);
  const eps = g.input(TRAIN_IO.eps, [B, L]);
  shapes.set(x, [B, 1, IMAGE_SIZE, IMAGE_SIZE]);
  const enc = forwardEncoder(layersOf(spec.encoder), x, forward);
  if (JSON.stringify(enc.out.shape) !== JSON.stringify([2 * L])) {
    throw new Error(
      `ort engine: encoder outputs ${JSON.stringify(enc.out.shape)}, expected [${2 * L}]`,
    );
  }
  const h = enc.out.name;
  const slice = (t: string, a: number, b: number, name: string) =>
    g.op("Slice", name, [t, g.int64Init("s", [a]), g.int64Init("e", [b]), g.int64Init("ax", [1])]);
  const mu = slice(h, 0, L, "mu");
  const logvar = slice(h, L, 2 * L, "logvar");
  const std = g.op("Exp", "std", [g.op("Mul", "half_logvar", [logvar, g.scalar("c_half", 0.5)])]);
  const z = g.op("Add", "z", [mu, g.op("Mul", "std_eps", [std, eps])]);
  shapes.set(z, [B, L]);
  const dec = forward(layersOf(spec.decoder), { name: z, shape: [L] });
  if (JSON.stringify(dec.out.shape) !== JSON.stringify([IMAGE_SIZE, IMAGE_SIZE, 1])) {
    throw new Error(
      `ort engine: decoder outputs ${JSON.stringify(dec.out.shape)}, expected [28,28,1]`,
    );
  }
  return { x, eps, enc, h, mu, logvar, std, z, dec };
}

/**
 * The negative ELBO of trainer/model.ts vaeLoss: bce = relu(l) - l*x + softplus(-|l|) summed
 * over pixels, plus KL(q(z|x) || N(0, I)), each averaged over the batch.
 */
function negElbo(
  g: RecordingBuilder,
  B: number,
  x: string,
  logits4: string,
  mu: string,
  logvar: string,
) {
  const flat = g.int64Init("flat", [-1, PIXELS]);
  const l = g.op("Reshape", "logits_flat", [logits4, flat]);
  const xf = g.op("Reshape", "x_flat", [x, flat]);
  const invB = g.scalar("inv_batch", 1 / B);
  const bce = g.op("Add", "bce", [
    g.op("Sub", "bce_a", [g.op("Relu", "bce_relu", [l]), g.op("Mul", "bce_lx", [l, xf])]),
    g.op("Softplus", "bce_sp", [g.op("Neg", "bce_neg", [g.op("Abs", "bce_abs", [l])])]),
  ]);
  const rec = g.op(
    "Mul",
    "rec_mean",
    [g.op("ReduceSum", "rec_sum", [bce], { keepdims: 0 }), invB],
    {},
    TRAIN_IO.rec,
  );
  const ev = g.op("Exp", "exp_logvar", [logvar]);
  const klTerm = g.op("Sub", "kl_b", [
    g.op("Sub", "kl_a", [
      g.op("Add", "kl_1", [logvar, g.scalar("c_one", 1)]),
      g.op("Mul", "mu2", [mu, mu]),
    ]),
    ev,
  ]);
  const kl = g.op(
    "Mul",
    "kl_mean",
    [g.op("ReduceSum", "kl_sum", [klTerm], { keepdims: 0 }), g.scalar("c_kl", -0.5 / B)],
    {},
    TRAIN_IO.kl,
  );
  return { l, xf, invB, ev, elbo: g.op("Add", "neg_elbo", [rec, kl]) };
}

/**
 * The joint head on `input` (mu or the hidden features): total = -ELBO + w * cross-entropy
 * (trainer/train_step.ts), and hits.
 */
function headLoss(
  g: RecordingBuilder,
  headLayers: tf.layers.Layer[],
  classes: number,
  forward: ForwardLayers,
  shapes: Shapes,
  B: number,
  input: Value,
  elbo: string,
) {
  const onehot = g.input(TRAIN_IO.labels, [B, classes]);
  const cw = g.input(TRAIN_IO.classWeight, []);
  shapes.set(input.name, [B, ...input.shape]);
  const hd = forward(headLayers, input);
  const hl = hd.out.name;
  const ce = crossEntropy(g, hl, onehot, B, "head_logsoftmax", TRAIN_IO.ce);
  g.op("Add", "total", [elbo, g.op("Mul", "ce_w", [ce, cw])], {}, TRAIN_IO.loss);
  countHits(g, hl, onehot);
  return { hd, hl, onehot, cw, numClasses: hd.out.shape[0] };
}

/**
 * The decoder's backward pass from d total / d logits = (sigmoid(l) - x) / B, and the gradients
 * of mu and logvar through the reparameterisation and the KL term.
 */
function decoderAndLatentGradients(
  g: RecordingBuilder,
  shapes: Shapes,
  f: ReturnType<typeof forwardVae>,
  loss: ReturnType<typeof negElbo>,
  B: number,
) {
  const logits4 = f.dec.out.name;
  // d total / d logits = (sigmoid(l) - x) / B, back in the decoder's NCHW output shape.
  const dl = g.op("Mul", "d_logits", [
    g.op("Sub", "d_logits_a", [g.op("Sigmoid", "sig", [loss.l]), loss.xf]),
    loss.invB,
  ]);
  const dl4 = g.op("Reshape", "d_logits4", [
    dl,
    g.int64Init("logits_shape", [-1, 1, IMAGE_SIZE, IMAGE_SIZE]),
  ]);
  const gDec = backward(g, f.dec.tape, shapes, new Map([[logits4, dl4]]), new Set());
  const dz = gDec.get(f.z);
  if (!dz) throw new Error("ort engine: internal error: no gradient reached the decoder input");
  // dmu = dz + mu/B (KL); dlogvar = dz*eps*std/2 + (exp(logvar) - 1)/(2B).
  const dmu = g.op("Add", "d_mu", [dz, g.op("Mul", "d_kl_mu", [f.mu, loss.invB])]);
  const dlogvar = g.op("Add", "d_logvar", [
    g.op("Mul", "d_lv_a", [
      g.op("Mul", "d_lv_dz_eps", [dz, f.eps]),
      g.op("Mul", "d_lv_std", [f.std, g.scalar("c_half2", 0.5)]),
    ]),
    g.op("Mul", "d_lv_kl", [
      g.op("Sub", "d_lv_ev", [loss.ev, g.scalar("c_one2", 1)]),
      g.scalar("c_half_b", 0.5 / B),
    ]),
  ]);
  return { gDec, dmu, dlogvar };
}

/** Builds the forward + backward graph of one training step (see the file comment). */
export function buildTrainingGraph(spec: TrainingGraphSpec): TrainingGraph {
  const { encoder, decoder, head, latent: L, batch: B } = spec;
  const models: Record<string, tf.Sequential> = { encoder, decoder, ...(head ? { head } : {}) };
  const { g, shapes, slots, total, layersOf } = startStepGraph("vae_training_step", models);
  const forward: ForwardLayers = (layers, input) => forwardLayers(g, layers, input, shapes);

  const f = forwardVae(g, spec, layersOf, forward, shapes);
  const logits4 = f.dec.out.name;
  const loss = negElbo(g, B, f.x, logits4, f.mu, f.logvar);
  const headIn = spec.headInput === "hidden" ? f.enc.hidden : { name: f.mu, shape: [L] };
  const hd = head
    ? headLoss(
      g,
      layersOf(head),
      head.outputShape[1] as number,
      forward,
      shapes,
      B,
      headIn,
      loss.elbo,
    )
    : null;
  if (!hd) g.op("Identity", "total", [loss.elbo], {}, TRAIN_IO.loss);

  const { gDec, dmu: dmuVae, dlogvar } = decoderAndLatentGradients(g, shapes, f, loss, B);
  let dmu = dmuVae;
  let gHead = new Map<string, string>();
  // The encoder's backward seeds: the moments' gradient, and the head's when it reads hidden.
  const encSeeds = new Map<string, string>();
  if (hd) {
    // d total / d head logits = w * (softmax - onehot) / B.
    const dhl = g.op("Mul", "d_head_logits", [
      g.op("Sub", "d_hl_a", [g.op("Softmax", "head_softmax", [hd.hl], { axis: -1 }), hd.onehot]),
      g.op("Mul", "cw_over_b", [hd.cw, loss.invB]),
    ]);
    gHead = backward(g, hd.hd.tape, shapes, new Map([[hd.hl, dhl]]), new Set());
    const dHeadIn = gHead.get(headIn.name);
    if (dHeadIn && headIn.name === f.mu) dmu = g.op("Add", "d_mu_head", [dmu, dHeadIn]);
    else if (dHeadIn) encSeeds.set(headIn.name, dHeadIn);
  }
  const dh = g.op("Concat", "d_moments", [dmu, dlogvar], { axis: 1 });
  encSeeds.set(f.h, dh);
  const gEnc = backward(g, f.enc.tape, shapes, encSeeds, new Set([f.x]));

  const outputs: string[] = [TRAIN_IO.loss, TRAIN_IO.rec, TRAIN_IO.kl];
  if (head) outputs.push(TRAIN_IO.ce, TRAIN_IO.correct);
  const fin = finishGraph(g, new Map([...gEnc, ...gDec, ...gHead]), spec, outputs, total);
  return {
    bytes: g.encode(`latent-edge VAE training step (forward + backward), batch ${B}, latent ${L}`),
    params: g.params,
    size: fin.size,
    mode: fin.mode,
    slots,
    totalWeights: total,
    numClasses: hd?.numClasses ?? 0,
    hasHead: head != null,
    kind: "vae",
    dropout: null,
  };
}
