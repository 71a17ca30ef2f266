/**
 * Which of a bundle's files a server reads: the serving graph of the precision it runs, the
 * decoder, and the small files its routes and the acceptance check read. Nothing else is
 * downloaded or verified by a server: not the trainer's weights checkpoint (megabytes no
 * server reads) and not the serving graph of the other precision.
 */
import { EVALUATION_ROLE } from "./evaluation.ts";
import { LATENT_TRANSLATION_ROLE } from "./latent_translation.ts";
import type { Manifest } from "./manifest.ts";
import type { PrecisionChoice } from "./precision.ts";

/** Roles a server reads besides its serving graph (the demo, /v1/models, the latent routes). */
export const SERVED_FILE_ROLES: readonly string[] = Object.freeze([
  "decoder",
  "latent-map",
  "samples",
  LATENT_TRANSLATION_ROLE,
  EVALUATION_ROLE,
]);

/** Picks the roles to read once a manifest is known (a source downloads only those). */
export type RoleChoice = (manifest: Manifest) => readonly string[];

/**
 * The roles of `manifest`'s files a server running `choice` reads. A choice of int8 on a
 * bundle without an int8 graph names the fp32 one: the loader then refuses it with the reason.
 */
export function servedRoles(manifest: Manifest, choice: PrecisionChoice): string[] {
  const graph = choice === "fp32" || !manifest.int8 ? "model" : manifest.int8.role;
  const wanted = new Set([graph, ...SERVED_FILE_ROLES]);
  return [...new Set(manifest.files.map((f) => f.role))].filter((r) => wanted.has(r));
}

/** servedRoles for a server of `choice`, as a source's RoleChoice. */
export function servedBy(choice: PrecisionChoice): RoleChoice {
  return (manifest) => servedRoles(manifest, choice);
}
