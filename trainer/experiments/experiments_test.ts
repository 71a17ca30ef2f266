import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { FlagError } from "../../common/flags.ts";
import { main } from "./main.ts";
import { configFromFlags, FULL_CONFIG, parseIntList, QUICK_CONFIG, resultsHash } from "./config.ts";
import { planJobs, schedule } from "./plan.ts";
import { bestLatent, renderReport } from "./report.ts";
import { cellKey, type CellResult, emptyResults, type Results } from "./results.ts";

const dir = mkdtempSync(join(tmpdir(), "experiments-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

// Narrower than --quick's own defaults so the end-to-end test stays well under a minute.
const QUICK_ARGS = [
  "--quick",
  "--out",
  join(dir, "run"),
  "--cache-dir",
  join(dir, "cache"),
  "--latents",
  "2,4",
  "--samples",
  "100,200",
  "--seeds",
  "2",
  "--jobs",
  "2",
];

test("--quick runs end to end and writes parseable results, report and figures", {
  timeout: 170_000,
}, async () => {
  const t0 = performance.now();
  assert.equal(await main(QUICK_ARGS), 0);
  const out = join(dir, "run");
  const r = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results;
  // 2 latents x 1 N (Table 1) + latent 4 x 1 more N (Table 2), 2 heads + 2 few-label heads,
  // 2 seeds; CNN 2 N x 2 seeds.
  assert.equal(Object.keys(r.cells).length, (2 + 1) * 4 * 2 + 2 * 2);
  const few = Object.values(r.cells).filter((c) =>
    c.classifier === "knn" || c.classifier === "spread"
  );
  assert.equal(few.length, (2 + 1) * 2 * 2);
  for (const c of few) assert.ok(c.note && c.testAcc > 0.2, `${c.key}: ${c.testAcc} (${c.note})`);
  for (const c of Object.values(r.cells)) {
    for (const v of [c.trainAcc, c.testAcc]) {
      assert.ok(v >= 0 && v <= 1, `${c.key}: accuracy ${v} outside [0, 1]`);
    }
    assert.equal(c.testCount, QUICK_CONFIG.testCount);
  }
  assert.deepEqual(Object.keys(r.vaes).sort(), ["2", "4"]);
  assert.ok(r.estimate && r.estimate.wallSeconds > 0);
  assert.equal(r.sessions.length, 1);
  assert.ok(r.sessions[0].finished);
  const report = readFileSync(join(out, "report.md"), "utf8");
  for (
    const heading of [
      "## Table 1",
      "## Table 2",
      "## Beyond the study — few-label heads",
      "## Overfitting",
      "## Where we are below the study",
      "## The study's claims, checked",
      "## Time per part",
      "## Machine and engine",
    ]
  ) {
    assert.ok(report.includes(heading), `report.md lacks "${heading}"`);
  }
  assert.match(report, /\| 4 \(.*study's choice.*\) \| \d+\.\d ± \d+\.\d% \| 57\.4% \|/);
  for (const svg of ["fig1-latent-scatter.svg", "fig3-accuracy-vs-samples.svg"]) {
    assert.ok(readFileSync(join(out, svg), "utf8").startsWith("<svg"), `${svg} is not an SVG`);
  }
  const png = readFileSync(join(out, "fig2-reconstructions.png"));
  assert.deepEqual([...png.subarray(1, 4)], [...Buffer.from("PNG")]);
  console.log(`quick run: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
});

test("a second run with the same --out resumes: no job left, cached VAEs, same cells", {
  timeout: 120_000,
}, async () => {
  const out = join(dir, "run");
  const before = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results;
  assert.equal(await main(QUICK_ARGS), 0);
  const r = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results;
  assert.deepEqual(r.cells, before.cells);
  assert.equal(r.sessions.length, 2);
  assert.equal(r.jobs.length, before.jobs.length, "no job should have run again");
  assert.ok(existsSync(join(dir, "cache")));
});

test("--report-only redraws report.md from results.json and notes.md, training nothing", async () => {
  const out = join(dir, "run");
  writeFileSync(join(out, "notes.md"), "The tiny models say nothing about the study.\n");
  rmSync(join(out, "report.md"));
  const jobsBefore =
    (JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results).jobs.length;
  assert.equal(await main(["--report-only", "--out", out]), 0);
  const report = readFileSync(join(out, "report.md"), "utf8");
  assert.match(
    report,
    /## Notes \(written after the run\)\n\nThe tiny models say nothing about the study\./,
  );
  assert.equal(
    (JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Results).jobs.length,
    jobsBefore,
  );
  assert.equal(await main(["--report-only", "--out", join(dir, "nowhere")]), 2);
});

test("a run dir made with other settings is refused, not mixed", async () => {
  const code = await main([...QUICK_ARGS, "--vae-epochs", "5"]);
  assert.equal(code, 1);
});

test("flags: lists are parsed and checked; unknown flags are errors", async () => {
  assert.deepEqual(parseIntList("samples", "1000, 100,100"), [100, 1000]);
  assert.throws(() => parseIntList("latents", "2,x"), FlagError);
  assert.throws(() => configFromFlags({ samples: "70000" }), /exceed/);
  const c = configFromFlags({ quick: false, latents: "4", "vae-epochs": 7 });
  assert.deepEqual(c.latents, [4]);
  assert.equal(c.vae.epochs, 7);
  assert.equal(FULL_CONFIG.vae.epochs, 4, "the preset must not be mutated");
  const t2 = configFromFlags({ latents: "16", "table2-latent": 16 });
  assert.equal(t2.table2Latent, 16);
  assert.equal(
    planJobs(t2, emptyResults(t2, "h")).filter((j) => j.kind === "latent").length,
    1,
    "--table2-latent 16 with --latents 16 trains one VAE",
  );
  assert.throws(() => configFromFlags({ "table2-latent": 0 }), /table2-latent/);
  const noCnn = configFromFlags({ cnn: false });
  assert.equal(noCnn.withCnn, false);
  const noFew = configFromFlags({ "few-label": false, "graph-count": 5000 });
  assert.equal(noFew.fewLabel.graphCount, 5000);
  const noFewJobs = planJobs(noFew, emptyResults(noFew, "h"));
  assert.ok(
    noFewJobs.every((j) =>
      j.kind !== "latent" ||
      j.cells.every((c) => c.classifier === "logistic" || c.classifier === "mlp")
    ),
  );
  assert.equal(resultsHash({ ...FULL_CONFIG, withFewLabel: false }), resultsHash(FULL_CONFIG));
  assert.equal(planJobs(noCnn, emptyResults(noCnn, "h")).filter((j) => j.kind === "cnn").length, 0);
  assert.equal(resultsHash(noCnn), resultsHash(FULL_CONFIG), "--no-cnn only drops cells");
  assert.equal(await main(["--bogus"]), 2);
  // Row lists may change between sessions; settings that change numbers may not.
  assert.equal(resultsHash({ ...FULL_CONFIG, samples: [100] }), resultsHash(FULL_CONFIG));
  assert.notEqual(resultsHash({ ...FULL_CONFIG, testCount: 5 }), resultsHash(FULL_CONFIG));
});

test("schedule() gives the longest job to the first free worker", () => {
  const r = emptyResults(QUICK_CONFIG, "h");
  const jobs = planJobs(QUICK_CONFIG, r);
  assert.equal(jobs.filter((j) => j.kind === "latent").length, 3);
  const cost = (j: (typeof jobs)[number]) => (j.kind === "latent" ? 10 : 1);
  const s = schedule(jobs, 2, cost);
  assert.equal(s.cpuSeconds, 3 * 10 + 4 * 1);
  assert.equal(s.wallSeconds, 20);
  assert.equal(schedule(jobs, 1, cost).wallSeconds, 34);
});

function cell(
  classifier: CellResult["classifier"],
  latent: number | null,
  samples: number,
  seed: number,
  trainAcc: number,
  testAcc: number,
): CellResult {
  return {
    key: cellKey(classifier, latent, samples, seed),
    classifier,
    latent,
    samples,
    seed,
    trainAcc,
    testAcc,
    trainEvalCount: samples,
    testCount: 10000,
    steps: 1,
    seconds: 1,
  };
}

test("renderReport() shows ours beside the study, marks the best latent, answers the claims", () => {
  const cfg = { ...FULL_CONFIG, latents: [4, 9], samples: [100, 60000] };
  const r = emptyResults(cfg, "h");
  const cells = [
    cell("logistic", 4, 100, 0, 0.62, 0.6),
    cell("logistic", 4, 100, 1, 0.64, 0.62),
    cell("mlp", 4, 100, 0, 0.8, 0.65),
    cell("mlp", 4, 100, 1, 0.8, 0.67),
    cell("logistic", 9, 100, 0, 0.7, 0.5),
    cell("mlp", 9, 100, 0, 0.9, 0.5),
    cell("cnn", null, 100, 0, 1, 0.6),
    cell("cnn", null, 100, 1, 1, 0.62),
    cell("cnn", null, 60000, 0, 0.97, 0.931),
  ];
  for (const c of cells) r.cells[c.key] = c;
  assert.equal(bestLatent(r), 4);
  const md = renderReport(r, { fig1: false, fig2: null, fig3: true });
  assert.match(
    md,
    /\| 4 \(\*\*best \(ours\)\*\*, study's choice\) \| 61\.0 ± 1\.4% \| 57\.4% \| \+3\.6 \| 66\.0 ± 1\.4% \| 63\.9% \| \+2\.1 \|/,
  );
  assert.match(md, /\| 60,000 \| — \| — \| — \| — \| — \| — \| 93\.1% \| — \| — \|/);
  assert.match(md, /\| pixel CNN \| pixels \| 100 \| 100\.0 ± 0\.0% \| 61\.0 ± 1\.4% \| 39\.0 \|/);
  assert.match(md, /small latent suffice\?\*\* Yes/);
  assert.match(md, /beat the CNN at small samples\?\*\* Yes/);
  assert.match(md, /reduce the train\/test gap\?\*\* Yes/);
  assert.match(md, /Figure 1 not drawn/);
  // Below the study: logistic at latent 9 (50.0% vs 54.3%) and the CNN at 100 (61.0% vs 70.4%).
  assert.match(
    md,
    /- Table 1, latent 9, VAE \+ logistic: 50\.0% vs the study's 54\.3%, \*\*4\.3 points short\*\*/,
  );
  assert.match(
    md,
    /- Table 2, 100 samples, pixel CNN: 61\.0 ± 1\.4% vs the study's 70\.4%, \*\*9\.4 points short\*\*/,
  );
  assert.doesNotMatch(md, /Table 2, 100 samples, VAE \+ logistic/);
});
