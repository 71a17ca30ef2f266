import assert from "node:assert/strict";
import {
  type Evaluation,
  EVALUATION_FORMAT,
  findRegressions,
  summarizeEvaluation,
  validateEvaluation,
  type VersionScore,
} from "./evaluation.ts";

const LABELS = ["a", "b", "c"];
const LIMITS = { maxDrop: 0.5, maxClassDrop: 3, maxNoveltyShift: 2 };
const score = (accuracy: number, perClass: number[], novelShare: number | null): VersionScore => ({
  version: "v",
  accuracy,
  perClass,
  novelShare,
  noveltyThreshold: novelShare === null ? null : 1,
});

Deno.test("findRegressions() names overall, class and novelty changes beyond the limits", () => {
  const active = score(0.8, [0.9, 0.8, 0.7], 0.05);
  const r = findRegressions(LABELS, active, score(0.79, [0.9, 0.76, 0.75], 0.08), LIMITS);
  assert.deepEqual(r.map((x) => [x.kind, x.label, x.points]), [
    ["overall", undefined, 1],
    ["class", "b", 4],
    ["novelty", undefined, 3],
  ]);
});

Deno.test("findRegressions() accepts drops at the limit and skips novelty without calibration", () => {
  const active = score(0.8, [0.9, 0.8, 0.7], 0.05);
  assert.deepEqual(
    findRegressions(LABELS, active, score(0.795, [0.87, 0.8, 0.7], 0.07), LIMITS),
    [],
  );
  assert.deepEqual(findRegressions(LABELS, active, score(0.8, [0.9, 0.8, 0.7], null), LIMITS), []);
});

Deno.test("validateEvaluation() names the bad field; summarizeEvaluation() the worst class", () => {
  const e: Evaluation = {
    format: EVALUATION_FORMAT,
    created: "2026-12-01T00:00:00Z",
    data: { source: "x", description: "x", images: 10, perClass: [4, 3, 3], sha256: "0" },
    labels: LABELS,
    active: { ...score(0.8, [0.9, 0.8, 0.7], null), version: "old" },
    candidate: score(0.7, [0.9, 0.5, 0.7], null),
    agreement: 0.9,
    limits: LIMITS,
    regressions: [],
    verdict: "refused",
  };
  e.regressions = findRegressions(LABELS, e.active, e.candidate, LIMITS);
  const s = summarizeEvaluation(validateEvaluation(JSON.parse(JSON.stringify(e))));
  assert.equal(s.against, "old");
  assert.deepEqual(s.worstClass, { label: "b", drop: 30 });
  assert.equal(s.drop, 10);
  assert.deepEqual(s.regressions, [
    "overall accuracy 80.0% -> 70.0% (-10.0 points, limit 0.5)",
    'class "b" 80.0% -> 50.0% (-30.0 points, limit 3)',
  ]);
  assert.throws(
    () => validateEvaluation({ ...e, candidate: { ...e.candidate, perClass: [1] } }),
    /"candidate.perClass" is not 3 shares/,
  );
  assert.throws(() => validateEvaluation({ ...e, verdict: "maybe" }), /"verdict" is "maybe"/);
});
