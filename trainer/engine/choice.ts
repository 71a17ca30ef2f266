/**
 * Which engine runs the training steps: the tfjs kernels of the tfjs backend, or one
 * onnxruntime graph per step (ort_train.ts); "auto" takes ort whenever the graph can be built.
 * This is the one definition the trainer, the experiments and the benchmarks share.
 */
import type * as tf from "@tensorflow/tfjs";
import type { HeadConfig, VaeConfig } from "../model.ts";
import type { OrtEngine } from "./ort_lanes.ts";

export type TrainEngine = "tfjs" | "ort";
export type EngineChoice = TrainEngine | "auto";
export const ENGINE_CHOICES: EngineChoice[] = ["auto", "tfjs", "ort"];

/** What the engine choice needs of the run: the shapes and the step's hyperparameters. */
export interface EngineRun {
  vae: VaeConfig;
  head: HeadConfig | null;
  batchSize: number;
  learningRate: number;
  classWeight: number;
}

/**
 * Why the onnxruntime training graph cannot run this VAE, known before building it, or null.
 * Batch norm needs batch statistics, their backward rule and moving-statistic updates, which
 * the graph (ort_graph/) does not implement.
 */
export function ortRefusal(vae: VaeConfig): string | null {
  return vae.batchNorm
    ? "the encoder has batch normalisation (--batch-norm), which the onnxruntime training graph does not implement"
    : null;
}

/** The engine `choice` resolves to before onnxruntime is tried: tfjs when ort is refused. */
export function plannedEngine(choice: EngineChoice | undefined, vae: VaeConfig): EngineChoice {
  if (choice === "auto" && ortRefusal(vae)) return "tfjs";
  return choice ?? "tfjs";
}

/**
 * The onnxruntime engine for `choice` ("ort", or "auto"), started from the models' weights and
 * the tfjs optimizer's state; null means tfjs steps. "auto" falls back to tfjs when the graph
 * cannot be built (ortRefusal, no onnxruntime-node, or a layer the graph lacks); "ort" fails
 * instead.
 */
export async function startOrtEngine(
  choice: EngineChoice | undefined,
  run: EngineRun,
  models: { encoder: tf.Sequential; decoder: tf.Sequential; head: tf.Sequential | null },
  optimizer: tf.Optimizer,
  o: { threads?: number; lanes?: number; log: (s: string) => void },
): Promise<OrtEngine | null> {
  if (choice !== "ort" && choice !== "auto") return null;
  const refused = ortRefusal(run.vae);
  if (refused && choice === "ort") {
    throw new Error(`--engine ort cannot train this model: ${refused}; use --engine tfjs or auto`);
  }
  if (refused) {
    o.log(`engine auto: ${refused}; training with tfjs`);
    return null;
  }
  try {
    const { OrtTrainer, adamStateFromTfjs } = await import("./ort_train.ts");
    const ortOpts = {
      latent: run.vae.latent,
      batchSize: run.batchSize,
      learningRate: run.learningRate,
      classWeight: run.classWeight,
      headInput: run.head?.input,
      threads: o.threads,
    };
    const lanes = o.lanes ?? 1;
    const ort: OrtEngine = lanes > 1
      ? await (await import("./ort_lanes.ts")).OrtLanes.create(
        models,
        { vae: run.vae, head: run.head },
        ortOpts,
        lanes,
      )
      : await OrtTrainer.create(models, ortOpts);
    const state = await adamStateFromTfjs(optimizer);
    if (state) ort.setOptimizerState(state);
    return ort;
  } catch (e) {
    if (choice === "ort") throw e;
    o.log(
      `engine auto: onnxruntime training unavailable (${
        (e as Error).message.split("\n")[0]
      }); training with tfjs`,
    );
    return null;
  }
}
