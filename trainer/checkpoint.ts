/**
 * Training checkpoints: one file holding the run's full config, its position (epoch, step) and
 * every weight and optimizer slot, so a run can be rebuilt from the file alone (nanoGPT habit).
 * Written to a temporary file then renamed, so an interrupt (Ctrl-C, kill, crash) at any moment
 * leaves the previous checkpoint intact.
 *
 * Layout: "LECKPT1\n" magic, uint32 LE header length, JSON header, then float32 tensors in the
 * header's order.
 */
import * as tf from "@tensorflow/tfjs";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

const MAGIC = "LECKPT1\n";

export interface CheckpointHeader<C> {
  config: C;
  epoch: number;
  /** Steps already done within `epoch` (0 = the epoch has not started). */
  stepInEpoch: number;
  globalStep: number;
  history: unknown[];
  tensors: { group: string; name: string; shape: number[] }[];
}

export interface CheckpointData<C> extends Omit<CheckpointHeader<C>, "tensors"> {
  /** Named weight groups: e.g. {encoder: [...], decoder: [...], optimizer: [...]}; order matters. */
  groups: Record<string, { name: string; tensor: tf.Tensor }[]>;
}

/** The checkpoint file's bytes (a bundle carries a weights-only one for warm starts). */
export function encodeCheckpoint<C>(data: CheckpointData<C>): Buffer {
  const tensors: CheckpointHeader<C>["tensors"] = [];
  const chunks: Uint8Array[] = [];
  for (const [group, list] of Object.entries(data.groups)) {
    for (const { name, tensor } of list) {
      tensors.push({ group, name, shape: tensor.shape });
      const v = tensor.dataSync() as Float32Array;
      const f = v instanceof Float32Array ? v : Float32Array.from(v);
      chunks.push(new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
    }
  }
  const header: CheckpointHeader<C> = {
    config: data.config,
    epoch: data.epoch,
    stepInEpoch: data.stepInEpoch,
    globalStep: data.globalStep,
    history: data.history,
    tensors,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, json.length, true);
  return Buffer.concat([Buffer.from(MAGIC), len, json, ...chunks]);
}

export function saveCheckpoint<C>(path: string, data: CheckpointData<C>): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, encodeCheckpoint(data));
  renameSync(tmp, path);
}

export type LoadedCheckpoint<C> = ReturnType<typeof decodeCheckpoint<C>>;

/** Reads a checkpoint; tensors are returned as plain arrays so the caller decides when to make tensors. */
export function loadCheckpoint<C>(
  path: string,
): { header: CheckpointHeader<C>; values: Float32Array[] } {
  if (!existsSync(path)) throw new Error(`Cannot resume: checkpoint ${path} does not exist`);
  return decodeCheckpoint<C>(readFileSync(path), path);
}

/** Parses checkpoint bytes; `path` names the source in errors. */
export function decodeCheckpoint<C>(
  buf: Buffer,
  path: string,
): { header: CheckpointHeader<C>; values: Float32Array[] } {
  if (buf.subarray(0, MAGIC.length).toString() !== MAGIC) {
    throw new Error(`Cannot resume from ${path}: not a latent-edge checkpoint (bad magic)`);
  }
  const len = buf.readUInt32LE(MAGIC.length);
  const start = MAGIC.length + 4;
  const header = JSON.parse(buf.subarray(start, start + len).toString()) as CheckpointHeader<C>;
  let off = start + len;
  const values: Float32Array[] = [];
  for (const t of header.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (off + n * 4 > buf.length) {
      throw new Error(`Cannot resume from ${path}: truncated at tensor ${t.group}/${t.name}`);
    }
    // Copy: the Buffer's offset may not be 4-byte aligned.
    values.push(
      new Float32Array(buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + off + n * 4)),
    );
    off += n * 4;
  }
  if (off !== buf.length) {
    throw new Error(
      `Cannot resume from ${path}: ${buf.length - off} trailing bytes (corrupt file)`,
    );
  }
  return { header, values };
}

/** The saved tensors of one group, in order. */
export function groupOf<C>(
  ck: LoadedCheckpoint<C>,
  group: string,
): { name: string; shape: number[]; values: Float32Array }[] {
  return ck.header.tensors.flatMap((t, k) =>
    t.group === group ? [{ name: t.name, shape: t.shape, values: ck.values[k] }] : []
  );
}

/** Adam's running beta powers: not part of getWeights(), needed for an exact resume. */
interface AdamInternals {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
}

/** Sets every model group's weights from the checkpoint; `what` starts the error message. */
export function restoreWeights<C>(
  ck: LoadedCheckpoint<C>,
  groups: Record<string, tf.LayersModel>,
  what = "Cannot resume",
): void {
  for (const [g, model] of Object.entries(groups)) {
    const own = groupOf(ck, g);
    if (own.length !== model.weights.length) {
      throw new Error(
        `${what}: checkpoint has ${own.length} ${g} weights, the model has ${model.weights.length}`,
      );
    }
    const ts = own.map((e) => tf.tensor(e.values, e.shape));
    model.setWeights(ts);
    ts.forEach((t) => t.dispose());
  }
}

/** Restores the weights and Adam's state (moments and beta powers) for a bit-exact resume. */
export async function restoreTrainingState<C>(
  ck: LoadedCheckpoint<C>,
  groups: Record<string, tf.LayersModel>,
  optimizer: tf.Optimizer,
): Promise<void> {
  const optimizerWeights = groupOf(ck, "optimizer").map((t) => ({
    name: t.name,
    tensor: tf.tensor(t.values, t.shape),
  }));
  const betaPowers = groupOf(ck, "adam_beta_powers").map((t) => t.values);
  restoreWeights(ck, groups);
  // Adam's slots are created lazily on the first step; set them after one is known to exist.
  if (optimizerWeights.length > 0) await optimizer.setWeights(optimizerWeights);
  optimizerWeights.forEach((w) => w.tensor.dispose());
  // setWeights recomputes beta^t with pow(), which differs in the last bit from the running
  // product Adam keeps; restore the saved products so a resumed run is bit-identical.
  if (betaPowers.length === 2) {
    const a = optimizer as unknown as AdamInternals;
    tf.tidy(() => {
      a.accBeta1.assign(tf.scalar(betaPowers[0][0]));
      a.accBeta2.assign(tf.scalar(betaPowers[1][0]));
    });
  }
}

/** The weights of every group, as checkpoint groups (no optimizer state). */
export function weightGroups(
  groups: Record<string, tf.LayersModel>,
): Record<string, { name: string; tensor: tf.Tensor }[]> {
  return Object.fromEntries(
    Object.entries(groups).map((
      [g, model],
    ) => [g, model.weights.map((w) => ({ name: w.originalName, tensor: w.read() }))]),
  );
}

/** The tfjs optimizer's state as checkpoint groups; `started`: Adam has taken a step. */
export async function tfjsOptimizerGroups(
  optimizer: tf.Optimizer,
  started: boolean,
): Promise<Record<string, { name: string; tensor: tf.Tensor }[]>> {
  const ow = started ? await optimizer.getWeights() : [];
  const a = optimizer as unknown as AdamInternals;
  return {
    optimizer: ow.map((w) => ({ name: w.name, tensor: w.tensor })),
    adam_beta_powers: [{ name: "accBeta1", tensor: a.accBeta1 }, {
      name: "accBeta2",
      tensor: a.accBeta2,
    }],
  };
}
