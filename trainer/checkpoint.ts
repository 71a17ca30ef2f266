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

export function saveCheckpoint<C>(path: string, data: CheckpointData<C>): void {
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
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, Buffer.concat([Buffer.from(MAGIC), len, json, ...chunks]));
  renameSync(tmp, path);
}

/** Reads a checkpoint; tensors are returned as plain arrays so the caller decides when to make tensors. */
export function loadCheckpoint<C>(
  path: string,
): { header: CheckpointHeader<C>; values: Float32Array[] } {
  if (!existsSync(path)) throw new Error(`Cannot resume: checkpoint ${path} does not exist`);
  const buf = readFileSync(path);
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
