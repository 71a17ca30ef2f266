/**
 * A model's lineage, as its manifest carries it under `lineage` (written by trainer/lineage.ts):
 * the model it was warm-started from, a fingerprint of its training split, the share of the
 * parent's training data replayed, and the models before the parent. Pure, for both runtimes.
 */

export interface Lineage {
  /** The model this one was warm-started from; null for a model trained from scratch. */
  parent: { name: string; version: string; testAccuracy?: number } | null;
  /** The training split of this run (without replayed images): sha256 of pixels and labels. */
  train: { kind: string; source: string; images: number; fingerprint: string };
  /** The parent's images mixed in (--replay); null when none were. */
  replay: { fraction: number; images: number; parentImages: number; fingerprint: string } | null;
  /** The parent's own ancestors, then the parent: oldest first. */
  ancestors: { name: string; version: string; train?: string }[];
}

export class LineageError extends Error {
  constructor(readonly field: string, readonly reason: string) {
    super(`Invalid lineage: field "${field}" ${reason}`);
    this.name = "LineageError";
  }
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SHA = /^[0-9a-f]{64}$/;

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function field(o: Obj, key: string, path: string, ok: (v: unknown) => boolean, want: string) {
  const v = o[key];
  if (!ok(v)) throw new LineageError(path + key, `must be ${want}, got ${JSON.stringify(v)}`);
  return v;
}

const isStr = (v: unknown) => typeof v === "string" && v.length > 0;
const isId = (v: unknown) => typeof v === "string" && ID.test(v);
const isSha = (v: unknown) => typeof v === "string" && SHA.test(v);
const isCount = (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= 1;

function section(o: Obj, key: string, path: string): Obj {
  return field(o, key, path, isObj, "an object") as Obj;
}

function modelRef(o: Obj, path: string): void {
  field(o, "name", path, isId, "a path-safe id");
  field(o, "version", path, isId, "a path-safe id");
}

/** Checks a parsed lineage record; throws LineageError naming the first bad field. */
export function validateLineage(raw: unknown): Lineage {
  if (!isObj(raw)) throw new LineageError("lineage", "must be an object");
  const p = "lineage.";
  if (raw.parent !== null) modelRef(section(raw, "parent", p), `${p}parent.`);
  const train = section(raw, "train", p);
  field(train, "kind", `${p}train.`, isStr, "a non-empty string");
  field(train, "source", `${p}train.`, isStr, "a non-empty string");
  field(train, "images", `${p}train.`, isCount, "an integer >= 1");
  field(train, "fingerprint", `${p}train.`, isSha, "64 lowercase hex digits");
  if (raw.replay !== null) {
    const r = section(raw, "replay", p);
    if (raw.parent === null) throw new LineageError(`${p}replay`, "needs a lineage.parent");
    const isFraction = (v: unknown) => typeof v === "number" && Number.isFinite(v) && v > 0;
    field(r, "fraction", `${p}replay.`, isFraction, "a number > 0");
    const n = field(r, "images", `${p}replay.`, isCount, "an integer >= 1") as number;
    const of = field(r, "parentImages", `${p}replay.`, isCount, "an integer >= 1") as number;
    if (n > of) throw new LineageError(`${p}replay.images`, `must not exceed parentImages (${of})`);
    field(r, "fingerprint", `${p}replay.`, isSha, "64 lowercase hex digits");
  }
  const ancestors = field(raw, "ancestors", p, Array.isArray, "an array") as unknown[];
  ancestors.forEach((a, i) => {
    const ap = `${p}ancestors[${i}].`;
    if (!isObj(a)) throw new LineageError(`${p}ancestors[${i}]`, "must be an object");
    modelRef(a, ap);
    if (a.train !== undefined) field(a, "train", ap, isSha, "64 lowercase hex digits");
  });
  return raw as unknown as Lineage;
}
