/**
 * GET /v1/models shows the regression gate's verdict of the active bundle (evaluation.json),
 * and null for a bundle that carries none. The record is written by hand here (the publisher
 * writes it in trainer/gate_test.ts); the bundle is the committed tiny one on onnxruntime.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Evaluation, EVALUATION_FORMAT } from "../bundle/mod.ts";
import { FASHION_LABELS } from "../common/labels.ts";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";

const perClass = (v: number) => FASHION_LABELS.map(() => v);

async function withEvaluation(dir: string, e: Evaluation): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(e));
  await writeFile(join(dir, "evaluation.json"), bytes);
  const m = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  m.files.push({ role: "evaluation", path: "evaluation.json", sha256, bytes: bytes.length });
  await writeFile(join(dir, "manifest.json"), JSON.stringify(m));
}

Deno.test("GET /v1/models shows the gate's verdict, or null without evaluation.json", async () => {
  const root = await mkdtemp(join(tmpdir(), "evaluation-info-"));
  try {
    const dir = join(root, "bundle");
    await cp(TINY_BUNDLE, dir, { recursive: true });
    const shirt = perClass(0.8);
    shirt[6] = 0.7;
    await withEvaluation(dir, {
      format: EVALUATION_FORMAT,
      created: "2026-12-01T12:00:00.000Z",
      data: { source: "t", description: "t", images: 5000, perClass: perClass(500), sha256: "0" },
      labels: [...FASHION_LABELS],
      active: {
        version: "older",
        accuracy: 0.8,
        perClass: perClass(0.8),
        novelShare: 0.05,
        noveltyThreshold: 9,
      },
      candidate: {
        version: "x",
        accuracy: 0.79,
        perClass: shirt,
        novelShare: 0.05,
        noveltyThreshold: 9,
      },
      agreement: 0.93,
      limits: { maxDrop: 0.5, maxClassDrop: 3, maxNoveltyShift: 2 },
      regressions: [{ kind: "class", label: "Shirt", active: 0.8, candidate: 0.7, points: 10 }],
      verdict: "forced",
    });
    for (const [bundle, want] of [[dir, "forced"], [TINY_BUNDLE, null]] as const) {
      const s = await serveBundle("native", bundle);
      try {
        const body = await (await s.app.request("/v1/models")).json();
        const ev = body.active.evaluation;
        if (want === null) {
          assert.equal(ev, null);
          continue;
        }
        assert.equal(ev.verdict, want);
        assert.equal(ev.against, "older");
        assert.equal(ev.images, 5000);
        assert.deepEqual(ev.worstClass, { label: "Shirt", drop: 10 });
        assert.equal(ev.drop, 1);
        assert.deepEqual(ev.regressions, ['class "Shirt" 80.0% -> 70.0% (-10.0 points, limit 3)']);
      } finally {
        await s.model.close();
      }
    }
  } finally {
    await rm(root, { recursive: true });
  }
});
