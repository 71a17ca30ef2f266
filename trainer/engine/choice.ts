/**
 * Which engine runs the training steps: the tfjs kernels of the tfjs backend, or one
 * onnxruntime graph per step (ort_train.ts); "auto" takes ort whenever the graph can be built.
 * This is the one definition the trainer, the experiments and the benchmarks share.
 */
export type TrainEngine = "tfjs" | "ort";
export type EngineChoice = TrainEngine | "auto";
export const ENGINE_CHOICES: EngineChoice[] = ["auto", "tfjs", "ort"];
