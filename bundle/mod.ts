/**
 * The bundle contract in one place: what a model bundle holds (manifest.ts, tensors.ts,
 * latent_map.ts, latent_translation.ts, evaluation.ts), how it is read and verified (read.ts, probe.ts, session_io.ts) and the one
 * acceptance check that the publisher and the server both run (accept.ts).
 */
export * from "./accept.ts";
export * from "./encode_set.ts";
export * from "./evaluation.ts";
export * from "./held_out.ts";
export * from "./labels.ts";
export * from "./latent_map.ts";
export * from "./latent_translation.ts";
export * from "./lineage.ts";
export * from "./manifest.ts";
export * from "./novelty.ts";
export * from "./precision.ts";
export * from "./probe.ts";
export * from "./read.ts";
export * from "./samples.ts";
export * from "./served.ts";
export * from "./session_io.ts";
export * from "./tensors.ts";
