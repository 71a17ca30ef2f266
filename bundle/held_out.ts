/**
 * The held-out record a bundle may carry (role "held-out", held-out.json): the sha256 of every
 * image's file content that was kept out of training (test and validation), so a later
 * evaluation or retrain (`--held-out <bundle>`) holds out exactly the same images, whatever
 * their file names.
 */

export const HELD_OUT_FILE = "held-out.json";
export const HELD_OUT_FORMAT = "latent-edge/held-out@1";

export interface HeldOutRecord {
  format: typeof HELD_OUT_FORMAT;
  hash: "sha256";
  test: string[];
  val: string[];
}

const HEX64 = /^[0-9a-f]{64}$/;

export function heldOutRecord(h: { test: string[]; val: string[] }): HeldOutRecord {
  return {
    format: HELD_OUT_FORMAT,
    hash: "sha256",
    test: [...h.test].sort(),
    val: [...h.val].sort(),
  };
}

export function validateHeldOut(raw: unknown): HeldOutRecord {
  const r = raw as HeldOutRecord;
  if (typeof raw !== "object" || raw === null) throw new Error("it is not a JSON object");
  if (r.format !== HELD_OUT_FORMAT) {
    throw new Error(`"format" is ${JSON.stringify(r.format)}, expected "${HELD_OUT_FORMAT}"`);
  }
  for (const key of ["test", "val"] as const) {
    if (!Array.isArray(r[key]) || !r[key].every((h) => typeof h === "string" && HEX64.test(h))) {
      throw new Error(`"${key}" is not a list of sha256 hex digests`);
    }
  }
  return r;
}
