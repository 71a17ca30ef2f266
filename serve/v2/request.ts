/**
 * An inference request -> the model's input batch and the outputs asked for. The one input
 * (the manifest's input name, "image") comes as FP32 [N,1,28,28] or [N,784] values in [0, 1]
 * (used as they are), UINT8 pixels 0-255 (the /v1 raw-pixel normalisation), or BYTES encoded
 * PNG/JPEG images (base64 strings in JSON, raw in the binary extension; decoded and
 * preprocessed exactly as /v1 does, `preprocess` parameter "auto" or "none"). Every failure is
 * a 400 naming the field, e.g. `inputs[0].shape`.
 */
import { IMAGE_SIZE, PIXELS } from "../../common/labels.ts";
import { normalizePixels, type PreprocessMode } from "../../common/preprocess.ts";
import { type ImageBatch, imageToInput, type InputLimits } from "../inputs.ts";
import { BinaryReader, bytesFloat32, readBytesElements } from "./binary.ts";
import { badRequest, V2Error } from "./errors.ts";
import { decodeBase64 } from "../../common/base64.ts";

export type Params = Record<string, string | number | boolean>;

export interface RequestedOutput {
  name: string;
  /** Send this output in the binary part (binary extension). */
  binary: boolean;
  /** Top-k classification strings instead of the tensor (classification extension). */
  classification: number;
}

export interface ParsedRequest {
  id?: string;
  batch: ImageBatch;
  /** Null: every output, with the request's default binary setting. */
  outputs: RequestedOutput[] | null;
  binaryDefault: boolean;
}

export interface ModelIO {
  input: string;
  outputs: readonly string[];
  classes: number;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function params(v: unknown, field: string): Params {
  if (v === undefined) return {};
  if (!isObject(v)) throw badRequest(field, "must be an object of parameters");
  for (const [k, x] of Object.entries(v)) {
    if (!["string", "number", "boolean"].includes(typeof x)) {
      throw badRequest(`${field}.${k}`, "parameters must be strings, numbers or booleans");
    }
  }
  return v as Params;
}

function flag(p: Params, key: string, field: string): boolean {
  const v = p[key];
  if (v === undefined) return false;
  if (typeof v !== "boolean") {
    throw badRequest(`${field}.${key}`, `must be a boolean, got ${JSON.stringify(v)}`);
  }
  return v;
}

function shapeOf(v: unknown, field: string): number[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw badRequest(
      field,
      `must be a non-empty array of non-negative integers, got ${JSON.stringify(v)}`,
    );
  }
  return v as number[];
}

/** The batch size N of an image tensor of `datatype`, checking the rest of the shape. */
function batchOf(datatype: string, shape: number[], field: string, limits: InputLimits): number {
  const s = shape.join(",");
  const ok = datatype === "BYTES"
    ? shape.length === 1 || (shape.length === 2 && shape[1] === 1)
    : (shape.length === 2 && shape[1] === PIXELS) ||
      (shape.length === 4 && s.endsWith(`,1,${IMAGE_SIZE},${IMAGE_SIZE}`)) ||
      (datatype === "UINT8" && shape.length === 3 && s.endsWith(`,${IMAGE_SIZE},${IMAGE_SIZE}`));
  if (!ok) {
    const want = datatype === "BYTES"
      ? "[N] (one encoded image each)"
      : datatype === "UINT8"
      ? "[N,1,28,28], [N,28,28] or [N,784]"
      : "[N,1,28,28] or [N,784]";
    throw badRequest(`${field}.shape`, `${datatype} images must have shape ${want}, got [${s}]`);
  }
  const n = shape[0];
  if (n === 0) throw badRequest(`${field}.shape`, "the batch is empty (N = 0)");
  if (n > limits.maxBatch) {
    throw new V2Error(
      413,
      `${field}.shape: N = ${n} images; at most ${limits.maxBatch} are accepted per request (split the batch)`,
    );
  }
  return n;
}

/** JSON tensor data, flat or nested, as one flat array of `count` elements. */
function flatData(v: unknown, count: number, field: string): unknown[] {
  if (!Array.isArray(v)) {
    throw badRequest(`${field}.data`, "must be an array (or use binary_data_size)");
  }
  const flat = v.length > 0 && Array.isArray(v[0]) ? v.flat(Infinity) : v;
  if (flat.length !== count) {
    throw badRequest(`${field}.data`, `holds ${flat.length} elements; the shape needs ${count}`);
  }
  return flat;
}

function fp32(raw: unknown[] | Float32Array, field: string): Float32Array {
  const out = raw instanceof Float32Array ? raw : new Float32Array(raw.length);
  for (let i = 0; i < out.length; i++) {
    const v = raw instanceof Float32Array ? raw[i] : raw[i];
    // The model's input range: values outside it are almost always 0-255 pixels sent as FP32.
    if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
      throw badRequest(
        `${field}.data[${i}]`,
        `is ${
          JSON.stringify(v)
        }; FP32 pixels must be numbers in [0, 1] (send 0-255 values as UINT8)`,
      );
    }
    out[i] = v;
  }
  return out;
}

function uint8(raw: unknown[] | Uint8Array, field: string): Float32Array {
  if (raw instanceof Uint8Array) return normalizePixels(raw);
  const px = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 255) {
      throw badRequest(
        `${field}.data[${i}]`,
        `is ${JSON.stringify(v)}; UINT8 pixels must be integers 0-255`,
      );
    }
    px[i] = v;
  }
  return normalizePixels(px);
}

function base64(v: unknown, field: string): Uint8Array {
  if (typeof v !== "string") {
    throw badRequest(field, "BYTES elements in JSON must be base64 strings");
  }
  try {
    return decodeBase64(v);
  } catch {
    throw badRequest(field, "is not valid base64");
  }
}

function preprocessMode(p: Params, field: string, fallback: PreprocessMode): PreprocessMode {
  const v = p.preprocess;
  if (v === undefined) return fallback;
  if (v === "auto" || v === "none") return v;
  throw badRequest(`${field}.preprocess`, `must be "auto" or "none", got ${JSON.stringify(v)}`);
}

function readInput(
  input: unknown,
  io: ModelIO,
  binary: BinaryReader,
  limits: InputLimits,
  mode: PreprocessMode,
): ImageBatch {
  const field = "inputs[0]";
  if (!isObject(input)) throw badRequest(field, "must be an object {name, shape, datatype, data}");
  if (input.name !== io.input) {
    throw badRequest(
      `${field}.name`,
      `unknown input ${JSON.stringify(input.name)}; the model takes "${io.input}"`,
    );
  }
  const datatype = input.datatype;
  if (datatype !== "FP32" && datatype !== "UINT8" && datatype !== "BYTES") {
    throw badRequest(
      `${field}.datatype`,
      `is ${JSON.stringify(datatype)}; "${io.input}" takes FP32, UINT8 or BYTES`,
    );
  }
  const p = params(input.parameters, `${field}.parameters`);
  const count = batchOf(datatype, shapeOf(input.shape, `${field}.shape`), field, limits);
  const size = p.binary_data_size;
  let raw: Uint8Array | null = null;
  if (size !== undefined) {
    if (input.data !== undefined) throw badRequest(field, "has both data and binary_data_size");
    raw = binary.take(size as number, field);
  }
  if (datatype === "BYTES") {
    const items = raw
      ? readBytesElements(raw, `${field} binary data`)
      : flatData(input.data, count, field);
    if (items.length !== count) {
      throw badRequest(field, `holds ${items.length} images; the shape says ${count}`);
    }
    const m = preprocessMode(p, `${field}.parameters`, mode);
    const images = new Float32Array(count * PIXELS);
    items.forEach((it, i) => {
      const what = `${field}.data[${i}]`;
      const bytes = it instanceof Uint8Array ? it : base64(it, what);
      images.set(imageToInput(bytes, what, limits, m), i * PIXELS);
    });
    return { images, count };
  }
  const elements = count * PIXELS;
  if (raw) {
    const want = datatype === "FP32" ? elements * 4 : elements;
    if (raw.length !== want) {
      throw badRequest(
        `${field}.parameters.binary_data_size`,
        `is ${raw.length} bytes; [${count} images] of ${datatype} need ${want}`,
      );
    }
  }
  const images = datatype === "FP32"
    ? fp32(raw ? bytesFloat32(raw, field) : flatData(input.data, elements, field), field)
    : uint8(raw ?? flatData(input.data, elements, field), field);
  return { images, count };
}

function readOutputs(v: unknown, io: ModelIO): RequestedOutput[] | null {
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length === 0) {
    throw badRequest("outputs", "must be a non-empty array of {name}");
  }
  return v.map((o, i) => {
    const field = `outputs[${i}]`;
    if (!isObject(o) || typeof o.name !== "string") {
      throw badRequest(field, "must be an object {name, parameters}");
    }
    if (!io.outputs.includes(o.name)) {
      throw badRequest(
        `${field}.name`,
        `unknown output ${JSON.stringify(o.name)}; the model has ${
          io.outputs.map((x) => `"${x}"`).join(", ")
        }`,
      );
    }
    const p = params(o.parameters, `${field}.parameters`);
    const k = p.classification ?? 0;
    if (k !== 0) {
      if (o.name !== io.outputs[0]) {
        throw badRequest(
          `${field}.parameters.classification`,
          `only "${io.outputs[0]}" holds class scores`,
        );
      }
      if (!Number.isInteger(k) || (k as number) < 1 || (k as number) > io.classes) {
        throw badRequest(
          `${field}.parameters.classification`,
          `must be an integer 1..${io.classes}, got ${JSON.stringify(k)}`,
        );
      }
    }
    return {
      name: o.name,
      binary: flag(p, "binary_data", `${field}.parameters`),
      classification: k as number,
    };
  });
}

/** Parses the JSON header (already split from any binary part) into what to run and return. */
export function parseInferRequest(
  json: Uint8Array,
  binaryPart: Uint8Array,
  io: ModelIO,
  limits: InputLimits,
): ParsedRequest {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(json));
  } catch (e) {
    throw badRequest("request body", `is not a JSON inference request (${(e as Error).message})`);
  }
  if (!isObject(doc)) throw badRequest("request body", "must be a JSON object {inputs: [...]}");
  if (doc.id !== undefined && typeof doc.id !== "string") {
    throw badRequest("id", "must be a string");
  }
  const p = params(doc.parameters, "parameters");
  const mode = preprocessMode(p, "parameters", "auto");
  if (!Array.isArray(doc.inputs) || doc.inputs.length !== 1) {
    throw badRequest(
      "inputs",
      `must hold exactly one input ("${io.input}"), got ${
        Array.isArray(doc.inputs) ? doc.inputs.length : JSON.stringify(doc.inputs)
      }`,
    );
  }
  const binary = new BinaryReader(binaryPart);
  const batch = readInput(doc.inputs[0], io, binary, limits, mode);
  binary.finish();
  return {
    id: doc.id as string | undefined,
    batch,
    outputs: readOutputs(doc.outputs, io),
    binaryDefault: flag(p, "binary_data_output", "parameters"),
  };
}
