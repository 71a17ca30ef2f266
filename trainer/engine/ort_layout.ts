/**
 * The two weight layouts of the ort engine and the maps between them: tfjs keeps one array per
 * weight (model, layer, weight order; NHWC kernels), the training graph one flat vector of all
 * parameters in ONNX layouts (ParamInput.offset, ParamInput.src: where each value sits in the
 * concatenated tfjs weights).
 */
import type * as tf from "@tensorflow/tfjs";
import type { TrainingGraph } from "./ort_graph/mod.ts";

/** The tfjs models a trainer reads from / writes to, by graph group ("classifier" for pixel classifiers). */
export type OrtModelGroups = Partial<
  Record<"encoder" | "decoder" | "head" | "classifier", tf.Sequential | null>
>;

/** ONNX-layout flat vector -> tfjs-layout arrays (one per tfjs weight). */
export function onnxToTfjs(graph: TrainingGraph, flatOnnx: Float32Array): Float32Array[] {
  const flat = new Float32Array(graph.totalWeights);
  for (const p of graph.params) {
    const src = p.src, o = p.offset;
    for (let j = 0; j < src.length; j++) flat[src[j]] = flatOnnx[o + j];
  }
  return graph.slots.map((s) => flat.slice(s.offset, s.offset + s.size));
}

/** tfjs-layout arrays (one per tfjs weight) -> into the ONNX-layout flat vector. */
export function tfjsToOnnx(
  graph: TrainingGraph,
  perWeight: ArrayLike<number>[],
  into: Float32Array,
): void {
  const flat = new Float32Array(graph.totalWeights);
  graph.slots.forEach((s, k) => {
    if (perWeight[k].length !== s.size) {
      throw new Error(
        `ort engine: weight ${s.layer.name}[${s.index}] has ${
          perWeight[k].length
        } values, expected ${s.size}`,
      );
    }
    flat.set(perWeight[k], s.offset);
  });
  for (const p of graph.params) {
    const src = p.src, o = p.offset;
    for (let j = 0; j < src.length; j++) into[o + j] = flat[src[j]];
  }
}

/** The models' current weights in the graph's slot order (tfjs layout). */
export function modelWeights(graph: TrainingGraph, models: OrtModelGroups): Float32Array[] {
  const per: Float32Array[] = [];
  const groups: Record<string, tf.Sequential | null | undefined> = models;
  const cache = new Map<string, Float32Array[]>();
  for (const s of graph.slots) {
    const model = groups[s.model];
    if (!model) {
      throw new Error(
        `ort engine: the trainer has ${s.model} weights, the models have no ${s.model}`,
      );
    }
    const key = `${s.model}/${s.layer.name}`;
    let ws = cache.get(key);
    if (!ws) {
      const layer = model.getLayer(s.layer.name);
      cache.set(key, ws = layer.getWeights().map((w) => w.dataSync() as Float32Array));
    }
    per.push(ws[s.index]);
  }
  return per;
}
