/**
 * The regression gate through the publish CLI, on tiny bundles scored on real Fashion-MNIST
 * test images. The bundles share one untrained 16-dim encoder (random conv features) and get
 * linear heads fitted in closed form (LDA) on 3000 training images, so they export in seconds:
 * "dims d" looks at the first d latent dimensions only (more dimensions: better in every
 * class), "shuffled" was fitted on shuffled labels. The same gate runs on a directory
 * registry, on an S3 one (a real s3rver) and on `publish promote`. Runs under Node (npm run
 * test:trainer).
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import {
  type Evaluation,
  EVALUATION_ROLE,
  readEvaluation,
  readManifest,
  validateEvaluation,
} from "../bundle/mod.ts";
import { resolveActive } from "../registry/registry.ts";
import { parseHistory, readHistory } from "../registry/history.ts";
import { remoteFile, remoteManifest, verifyRemoteVersion } from "../registry/s3_version.ts";
import { readTrafficRecords } from "../registry/traffic.ts";
import { startS3 } from "../testkit/s3_server.ts";
import { writeBundle } from "./bundle.ts";
import { encodeMu } from "./classifiers.ts";
import { loadFashionMnist, resolveDataDir, type Split, stratifiedSubset, take } from "./data.ts";
import { buildEncoder, buildHead, type HeadConfig, TINY_VAE, type VaeConfig } from "./model.ts";
import { calibrateBundle } from "./novelty.ts";
import { publishMain, reportPublishError } from "./publish.ts";

const L = 16, K = 10;
const VAE: VaeConfig = { ...TINY_VAE, latent: L, encDense: 32 };
const HEAD: HeadConfig = { kind: "logistic", hidden: [], dropout: 0, seed: 7 };
/** The gate scores on the first 5000 test images; the bundles' own metrics on the first 500. */
const EVAL = ["--eval-data", resolveDataDir(), "--eval-images", "5000", "--no-translation"];
let work: string;
const bundles: Record<string, string> = {};

/** Linear discriminant on the first `dims` latent dims: W (L x K) and b, shared covariance. */
function lda(x: Float32Array, y: ArrayLike<number>, n: number, dims: number) {
  const means = Array.from({ length: K }, () => new Float64Array(dims));
  const cnt = new Float64Array(K);
  for (let i = 0; i < n; i++) {
    cnt[y[i]]++;
    for (let j = 0; j < dims; j++) means[y[i]][j] += x[i * L + j];
  }
  means.forEach((m, k) => m.forEach((_, j) => (m[j] /= cnt[k])));
  // Augmented [S | I], Gauss-Jordan: the inverse of the within-class covariance.
  const a = Array.from({ length: dims }, () => new Float64Array(2 * dims));
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < dims; p++) {
      for (let q = 0; q < dims; q++) {
        a[p][q] += (x[i * L + p] - means[y[i]][p]) * (x[i * L + q] - means[y[i]][q]) / n;
      }
    }
  }
  a.forEach((row, r) => (row[r] += 1e-6, row[dims + r] = 1));
  for (let c = 0; c < dims; c++) {
    const d = a[c][c];
    for (let k = 0; k < 2 * dims; k++) a[c][k] /= d;
    for (let r = 0; r < dims; r++) {
      const f = a[r][c];
      if (r !== c) { for (let k = 0; k < 2 * dims; k++) a[r][k] -= f * a[c][k]; }
    }
  }
  const w = new Float32Array(L * K), b = new Float32Array(K);
  for (let k = 0; k < K; k++) {
    let q = 0;
    for (let p = 0; p < dims; p++) {
      let s = 0;
      for (let c = 0; c < dims; c++) s += a[p][dims + c] * means[k][c];
      w[p * K + k] = s;
      q += s * means[k][p];
    }
    b[k] = -0.5 * q + Math.log(cnt[k] / n);
  }
  return { w, b };
}

async function exportBundle(
  name: string,
  encoder: tf.Sequential,
  fit: { w: Float32Array; b: Float32Array },
  test500: Split,
  minute: number,
): Promise<string> {
  const head = buildHead(L, HEAD);
  head.setWeights([tf.tensor2d(fit.w, [L, K]), tf.tensor1d(fit.b)]);
  const dir = join(work, name);
  await writeBundle(dir, {
    name: "fashion-vae",
    encoder,
    decoder: null,
    head,
    vaeConfig: VAE,
    headConfig: HEAD,
    training: { note: `gate test bundle: ${name}` },
    test: test500,
    latentMapPoints: 0,
    now: new Date(Date.UTC(2026, 11, 1, 12, minute)),
  });
  return dir;
}

before(async () => {
  await tf.setBackend("cpu");
  work = await mkdtemp(join(tmpdir(), "gate-test-"));
  const data = loadFashionMnist();
  const train = stratifiedSubset(data.train, 3000, 1);
  const test500 = take(data.test, Array.from({ length: 500 }, (_, i) => i));
  const encoder = buildEncoder(VAE);
  const mu = encodeMu(encoder, L, train);
  const shuffled = Uint8Array.from(train.labels);
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = (i * 7919 + 13) % (i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  const fits: [string, ArrayLike<number>, number][] = [
    ["dims8", train.labels, 8],
    ["dims12", train.labels, 12],
    ["dims12b", train.labels, 12],
    ["dims16", train.labels, 16],
    ["shuffled", shuffled, 16],
    ["calibrated", train.labels, 16],
    ["calibratedLow", train.labels, 16],
  ];
  for (const [i, [name, labels, dims]] of fits.entries()) {
    bundles[name] = await exportBundle(name, encoder, lda(mu, labels, 3000, dims), test500, i);
  }
  // Same model twice: the second flags a quarter of ordinary images as novel.
  await calibrateBundle(bundles.calibrated, train, { heldOutCount: 500 });
  await calibrateBundle(bundles.calibratedLow, train, {
    heldOutCount: 500,
    thresholdPercentile: 75,
  });
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function registry() {
  const reg = await mkdtemp(join(work, "registry-"));
  const lines: string[] = [];
  const run = (args: string[]) =>
    publishMain([...args, "--registry", reg], (s) => lines.push(s)).catch((e) =>
      reportPublishError(e, (s) => lines.push(s))
    );
  const versionOf = async (name: string) => (await readManifest(bundles[name])).version;
  const evaluation = async (name: string): Promise<Evaluation> => {
    const dir = join(reg, "fashion-vae", await versionOf(name));
    return (await readEvaluation(dir, await readManifest(dir)))!;
  };
  const active = async () => (await resolveActive(reg)).version;
  return { reg, lines, run, versionOf, evaluation, active };
}

/** What `publish list` prints (to stdout, as the CLI does). */
async function list(run: (args: string[]) => Promise<number>): Promise<string> {
  const listed: string[] = [];
  const log = console.log;
  console.log = (s: string) => listed.push(s);
  try {
    assert.equal(await run(["list"]), 0);
  } finally {
    console.log = log;
  }
  return listed.join("\n");
}

test("a candidate fitted on shuffled labels is refused, named, kept inactive; CURRENT stays", async () => {
  const r = await registry();
  assert.equal(await r.run([bundles.dims16, ...EVAL]), 0, r.lines.join("\n"));
  assert.doesNotMatch(r.lines.join("\n"), /regression gate/, "first publish: nothing to gate");
  assert.equal(await r.run([bundles.shuffled, ...EVAL]), 1);
  const msg = r.lines[r.lines.length - 1];
  assert.match(msg, /regression gate refused .* on 5000 images/);
  assert.match(msg, /overall accuracy 6\d\.\d% -> 1\d\.\d% \(-\d\d\.\d points, limit 0\.5\)/);
  assert.match(msg, /class "Trouser" \d+\.\d% -> \d+\.\d% \(-\d+\.\d points, limit 3\)/);
  assert.equal(await r.active(), await r.versionOf("dims16"));
  const e = await r.evaluation("shuffled");
  assert.equal(e.verdict, "refused");
  assert.equal(e.data.images, 5000);
  assert.equal(e.data.perClass.reduce((s, v) => s + v, 0), 5000);
  assert.ok(e.active.accuracy > 0.6 && e.candidate.accuracy < 0.2, JSON.stringify(e.candidate));
  assert.ok(e.agreement < 0.25, `agreement ${e.agreement}`);
  // Every class the message names dropped by more than 3 points; the overall line too.
  const named = [...msg.matchAll(/class "([^"]+)"/g)].map((m) => m[1]);
  assert.ok(named.length >= 8, msg);
  for (const label of named) {
    const k = e.labels.indexOf(label);
    assert.ok(e.active.perClass[k] - e.candidate.perClass[k] > 0.03, label);
  }
  // Republishing or activating the refused version needs --force.
  assert.equal(await r.run([bundles.shuffled, ...EVAL]), 1);
  assert.match(r.lines[r.lines.length - 1], /was refused by the regression gate/);
  assert.equal(await r.run(["activate", await r.versionOf("shuffled")]), 1);
  assert.equal(await r.active(), await r.versionOf("dims16"));
});

test("a better candidate passes; --force activates a refused one and HISTORY records it", async () => {
  const r = await registry();
  assert.equal(await r.run([bundles.dims8]), 0, r.lines.join("\n"));
  // Without --eval-data the gate uses the active version's record: its 500 test images.
  assert.equal(await r.run([bundles.dims16, "--no-translation"]), 0, r.lines.join("\n"));
  assert.equal(await r.active(), await r.versionOf("dims16"));
  const e = await r.evaluation("dims16");
  assert.equal(e.verdict, "passed");
  assert.equal(e.data.images, 500);
  // The gate's numbers on those images are the exporter's own (tfjs) metrics for each bundle.
  const m8 = await readManifest(bundles.dims8), m16 = await readManifest(bundles.dims16);
  assert.equal(e.active.accuracy, m8.metrics.testAccuracy);
  assert.equal(e.candidate.accuracy, m16.metrics.testAccuracy);
  assert.ok(e.candidate.accuracy > e.active.accuracy + 0.03, JSON.stringify(e));

  assert.equal(await r.run([bundles.shuffled, ...EVAL, "--force"]), 0, r.lines.join("\n"));
  assert.equal(await r.active(), await r.versionOf("shuffled"));
  assert.equal((await r.evaluation("shuffled")).verdict, "forced");
  const last = (await readHistory(join(r.reg, "fashion-vae"))).at(-1)!;
  assert.equal(last.version, await r.versionOf("shuffled"));
  assert.match(last.forced!.join("\n"), /overall accuracy .* limit 0\.5/);
});

test("with several versions and after a rollback the gate compares with the active version", async () => {
  const r = await registry();
  assert.equal(await r.run([bundles.dims8, ...EVAL]), 0, r.lines.join("\n"));
  assert.equal(await r.run([bundles.dims16, ...EVAL]), 0, r.lines.join("\n"));
  // dims12 is better than dims8 but not than dims16, the active one.
  assert.equal(await r.run([bundles.dims12, ...EVAL]), 1);
  assert.equal((await r.evaluation("dims12")).active.version, await r.versionOf("dims16"));
  assert.equal(await r.run(["rollback"]), 0);
  assert.equal(await r.active(), await r.versionOf("dims8"));
  // The same heads under a new version id now pass: against dims8, the rolled-back-to version.
  assert.equal(await r.run([bundles.dims12b, ...EVAL]), 0, r.lines.join("\n"));
  const e = await r.evaluation("dims12b");
  assert.equal(e.active.version, await r.versionOf("dims8"));
  assert.equal(e.verdict, "passed");
  assert.equal(await r.active(), await r.versionOf("dims12b"));
  const text = await list(r.run);
  assert.match(text, /\* \S+ {2}gate passed vs \S+: \d+\.\d% -> \d+\.\d% \(\+\d+\.\d points/);
  assert.match(text, new RegExp(`${await r.versionOf("dims12")} {2}gate refused vs`));
  assert.equal(
    (await readFile(join(r.reg, "fashion-vae", "CURRENT"), "utf8")).trim(),
    e.candidate.version,
  );
});

test("the share flagged novel, each version at its own threshold, is gated too", async () => {
  const r = await registry();
  assert.equal(await r.run([bundles.calibrated, ...EVAL]), 0, r.lines.join("\n"));
  assert.equal(await r.run([bundles.calibratedLow, ...EVAL]), 1);
  const msg = r.lines[r.lines.length - 1];
  assert.match(msg, /novel share \d+\.\d% -> 2\d\.\d% \(\d+\.\d points, limit 2\)/);
  assert.doesNotMatch(msg, /accuracy|class "/, "same classifier: accuracy is unchanged");
  const e = await r.evaluation("calibratedLow");
  assert.equal(e.agreement, 1);
  const [a, c] = [e.active.novelShare!, e.candidate.novelShare!];
  // Test images are in distribution: about 5% above the 95th percentile, 25% above the 75th.
  assert.ok(a > 0.01 && a < 0.12, `active share ${a}`);
  assert.ok(c > 0.15 && c < 0.35, `candidate share ${c}`);
  assert.equal(e.candidate.noveltyThreshold! < e.active.noveltyThreshold!, true);
});

test("on an S3 registry the gate refuses, passes and is forced as on a directory", async () => {
  const s3 = await startS3();
  const url = `s3://${s3.bucket}/registry`, reg = s3.registry();
  const lines: string[] = [];
  // The default lease (15 s): the gate scores while the publisher holds the lock.
  const env = s3.env;
  const run = (args: string[]) =>
    publishMain([...args, "--registry", url], (s) => lines.push(s), env).catch((e) =>
      reportPublishError(e, (s) => lines.push(s))
    );
  const v = async (name: string) => (await readManifest(bundles[name])).version;
  const stored = async (name: string) => {
    const m = (await remoteManifest(reg, "fashion-vae", await v(name)))!;
    const bytes = await remoteFile(reg, "fashion-vae", m, EVALUATION_ROLE);
    return validateEvaluation(JSON.parse(new TextDecoder().decode(bytes!)));
  };
  const current = () => reg.readCurrent("fashion-vae");
  try {
    assert.equal(await run([bundles.dims8]), 0, lines.join("\n"));
    // Without --eval-data: the active version's record, its 500 test images, read from S3.
    assert.equal(await run([bundles.shuffled]), 1);
    assert.match(lines.at(-1)!, /gate refused .* on 500 images .*CURRENT is still/);
    assert.match(lines.at(-1)!, /overall accuracy 6\d\.\d% -> 1\d\.\d% \(-\d\d\.\d points/);
    assert.match(lines.join("\n"), new RegExp(`downloaded ${await v("dims8")} \\(the active`));
    assert.equal(await current(), await v("dims8"));
    // The refused version is stored whole with its record, and stays refused without --force.
    await verifyRemoteVersion(reg, "fashion-vae", await v("shuffled"));
    assert.equal((await stored("shuffled")).verdict, "refused");
    assert.equal(await run(["activate", await v("shuffled")]), 1);
    assert.match(lines.at(-1)!, /was refused by the regression gate/);

    assert.equal(await run([bundles.dims16]), 0, lines.join("\n"));
    assert.equal(await current(), await v("dims16"));
    const e = await stored("dims16");
    assert.equal(e.verdict, "passed");
    // The same numbers as the exporter's own metrics for each bundle on those 500 images.
    assert.equal(e.active.accuracy, (await readManifest(bundles.dims8)).metrics.testAccuracy);
    assert.equal(e.candidate.accuracy, (await readManifest(bundles.dims16)).metrics.testAccuracy);

    assert.equal(await run([bundles.dims12, ...EVAL.slice(0, 4), "--force"]), 0, lines.join("\n"));
    assert.equal(await current(), await v("dims12"));
    assert.equal((await stored("dims12")).verdict, "forced");
    const history = parseHistory(await reg.getText("fashion-vae/HISTORY"));
    assert.equal(history.at(-1)!.version, await v("dims12"));
    assert.match(history.at(-1)!.forced!.join("\n"), /limit/);
    assert.equal(history.at(-2)!.forced, undefined);
    const text = await list(run);
    assert.match(
      text,
      new RegExp(`\\* ${await v("dims12")} {2}gate forced vs ${await v("dims16")}`),
    );
    assert.match(
      text,
      new RegExp(`  ${await v("shuffled")} {2}gate refused vs ${await v("dims8")}`),
    );
  } finally {
    await s3.close();
  }
});

test("promote gates the canary's version against CURRENT: a better one passes", async () => {
  const r = await registry();
  assert.equal(await r.run([bundles.dims8]), 0, r.lines.join("\n"));
  const canary = ["canary", bundles.dims16, "--percent", "50", "--no-translation"];
  assert.equal(await r.run(canary), 0, r.lines.join("\n"));
  assert.equal(await r.run(["promote"]), 0, r.lines.join("\n"));
  const line = r.lines.find((l) => l.startsWith("regression gate"))!;
  assert.match(line, /on 500 images .*accuracy 60\.4% -> 68\.0%.*: passed/);
  assert.equal(await r.active(), await r.versionOf("dims16"));
  assert.equal((await readTrafficRecords(join(r.reg, "fashion-vae"))).canary?.state, "promoted");
  // Nothing is written into the promoted version: a version directory never changes.
  const dir = join(r.reg, "fashion-vae", await r.versionOf("dims16"));
  assert.equal(await readEvaluation(dir, await readManifest(dir)), null);
});
