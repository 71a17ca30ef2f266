/**
 * Inference for the service: the one place that owns onnxruntime (backend.ts), the batching
 * queue in front of each session (runner.ts), a validated loaded bundle (model.ts) and the
 * swappable slot that requests read the current model from (slot.ts). Re-exports only.
 */
export {
  type Backend,
  type BackendChoice,
  type BackendName,
  type IsolatedBackend,
  loadBackend,
  type Session,
  type TensorData,
} from "./backend.ts";
export { BatchRunner, type BatchStats, type RunnerOptions } from "./runner.ts";
export { WorkerBackend } from "./worker.ts";
export { type EncodeOutput, LoadedModel, loadModel, type LoadOptions } from "./model.ts";
export { ModelSlot, NoModelError } from "./slot.ts";
