/**
 * The model's answer -> a V2 inference response: each requested output as an FP32 tensor
 * [N, width] (JSON numbers, or little-endian bytes in the binary part), or, with the
 * classification parameter, as BYTES [N, k] strings "<value>:<index>:<label>", highest value
 * first, labels from the manifest.
 */
import { latentSpaceOf } from "../../bundle/mod.ts";
import type { EncodeOutput, LoadedModel } from "../inference/model.ts";
import { binaryMessage, float32Bytes, writeBytesElements } from "./binary.ts";
import type { ParsedRequest, RequestedOutput } from "./request.ts";

export interface ResponseOutput {
  name: string;
  datatype: "FP32" | "BYTES";
  shape: number[];
  /** binary_data_size (binary extension); latent_space on latent outputs (mu, logvar). */
  parameters?: { binary_data_size?: number; latent_space?: string };
  data?: number[] | string[];
}

export interface InferResponse {
  model_name: string;
  model_version: string;
  /** The latent space mu and logvar live in (bundle/latent_translation.ts); an extension. */
  parameters?: { latent_space: string };
  id?: string;
  outputs: ResponseOutput[];
}

/** The model's V2 output names, in order, and the width of each per image. */
export function modelOutputs(
  m: LoadedModel,
): { name: string; width: number; role: keyof EncodeOutput }[] {
  const o = m.manifest.outputs;
  return [
    { name: o.probabilities.name, width: m.labels.length, role: "probabilities" },
    { name: o.mu.name, width: m.latentSize, role: "mu" },
    { name: o.logvar.name, width: m.latentSize, role: "logvar" },
  ];
}

function numbers(a: Float32Array): number[] {
  const out = new Array<number>(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i];
  return out;
}

function classify(p: Float32Array, n: number, k: number, labels: readonly string[]): string[] {
  const K = labels.length;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const order = Array.from({ length: K }, (_, j) => j)
      .sort((a, b) => p[i * K + b] - p[i * K + a] || a - b);
    for (const j of order.slice(0, k)) out.push(`${p[i * K + j]}:${j}:${labels[j]}`);
  }
  return out;
}

/** Builds the response; `binary` holds the binary parts (empty: a plain JSON response). */
export function buildResponse(
  m: LoadedModel,
  req: ParsedRequest,
  out: EncodeOutput,
): { header: InferResponse; binary: Uint8Array[] } {
  const all = modelOutputs(m);
  const wanted: RequestedOutput[] = req.outputs ??
    all.map((o) => ({ name: o.name, binary: req.binaryDefault, classification: 0 }));
  const binary: Uint8Array[] = [];
  const space = latentSpaceOf(m.manifest);
  const outputs = wanted.map((w): ResponseOutput => {
    const o = output(w);
    const role = all.find((x) => x.name === w.name)!.role;
    // Stored latents need their space to be translated after a retrain (/v1/latent/translate).
    if (role === "mu" || role === "logvar") o.parameters = { ...o.parameters, latent_space: space };
    return o;
  });
  const header: InferResponse = {
    model_name: m.name,
    model_version: m.version,
    parameters: { latent_space: space },
    outputs,
  };
  if (req.id !== undefined) header.id = req.id;
  return { header, binary };

  /** An output whose data travels in the binary body: its size stands in the header. */
  function binaryOutput(
    name: string,
    datatype: "BYTES" | "FP32",
    shape: number[],
    bytes: Uint8Array,
  ): ResponseOutput {
    binary.push(bytes);
    return { name, datatype, shape, parameters: { binary_data_size: bytes.length } };
  }

  function output(w: RequestedOutput): ResponseOutput {
    const spec = all.find((o) => o.name === w.name)!;
    const values = out[spec.role] as Float32Array;
    const asBinary = w.binary || req.binaryDefault;
    if (w.classification > 0) {
      const strings = classify(values, out.count, w.classification, m.labels);
      const shape = [out.count, w.classification];
      if (!asBinary) return { name: w.name, datatype: "BYTES", shape, data: strings };
      const enc = new TextEncoder();
      return binaryOutput(
        w.name,
        "BYTES",
        shape,
        writeBytesElements(strings.map((s) => enc.encode(s))),
      );
    }
    const shape = [out.count, spec.width];
    if (!asBinary) return { name: w.name, datatype: "FP32", shape, data: numbers(values) };
    return binaryOutput(w.name, "FP32", shape, float32Bytes(values));
  }
}

/** The HTTP response: JSON, or (any binary output) the JSON header then the binary parts. */
export function encodeResponse(r: { header: InferResponse; binary: Uint8Array[] }): Response {
  const headers: Record<string, string> = {
    "X-Model-Name": r.header.model_name,
    "X-Model-Version": r.header.model_version,
  };
  if (r.header.parameters) headers["X-Latent-Space"] = r.header.parameters.latent_space;
  if (r.binary.length === 0) {
    return new Response(JSON.stringify(r.header), {
      headers: { ...headers, "Content-Type": "application/json" },
    });
  }
  const message = binaryMessage(r.header, r.binary);
  return new Response(message.body, { headers: { ...headers, ...message.headers } });
}
