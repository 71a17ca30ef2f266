import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { readManifest, validateManifest } from "../bundle/mod.ts";
import { PIXELS } from "../common/labels.ts";
import { writeBundle } from "./bundle.ts";
import { DEFAULT_DATA_DIR, type Split, take } from "./data.ts";
import { type DataOptions, loadTrainingData, type TrainingData } from "./datasets/mod.ts";
import { initEngine } from "./engine/tfjs_backend.ts";
import { addLineage, bundleCheckpoint, type DataLoader, lineageOf, replayMix } from "./lineage.ts";
import { TINY_VAE } from "./model.ts";
import { type EpochRecord, type TrainConfig, trainVae } from "./train.ts";
import {
  growLabels,
  initFromParent,
  loadParent,
  splitSpec,
  WarmStartError,
  withParentLabels,
} from "./warm_start.ts";

const OPTIONS: DataOptions = {
  onBadImage: "fail",
  minPerClass: 5,
  testFraction: 0.1,
  valFraction: 0.1,
  trainCount: 1024,
  valCount: 0,
  seed: 3, // the run's seed, as the CLI loads its data with
};
const CFG: TrainConfig = {
  vae: { ...TINY_VAE },
  head: { kind: "mlp", hidden: [8], dropout: 0, seed: 7, classes: 10 },
  classWeight: 10,
  epochs: 3,
  batchSize: 64,
  learningRate: 3e-3,
  seed: 3,
  data: { trainCount: 1024, valCount: 0 },
};
const quiet = () => {};
const load: DataLoader = (path, saved, seed) =>
  loadTrainingData(path, { ...OPTIONS, ...saved, seed }, quiet);

let work: string;
let data: TrainingData;
let parentHistory: EpochRecord[];
/** The parent bundle, a run directory without a bundle checkpoint, and a two-version registry. */
let bundleDir: string, registry: string;

before(async () => {
  await initEngine({ log: quiet });
  work = mkdtempSync(join(tmpdir(), "warm-start-"));
  data = await loadTrainingData(DEFAULT_DATA_DIR, OPTIONS, quiet);
  const r = await trainVae(CFG, data.train, { progress: false });
  parentHistory = r.history;
  bundleDir = join(work, "parent");
  const head = r.models.head!;
  await writeBundle(bundleDir, {
    name: "tiny",
    encoder: r.models.encoder,
    decoder: r.models.decoder,
    head,
    vaeConfig: CFG.vae,
    headConfig: CFG.head!,
    training: { ...CFG },
    data: data.record,
    test: take(data.test, Array.from({ length: 300 }, (_, i) => i)),
    latentMapPoints: 0,
  });
  await addLineage(
    bundleDir,
    lineageOf(data, null, null),
    bundleCheckpoint(r.models, CFG, r.history),
  );
  const version = (await readManifest(bundleDir)).version;
  registry = join(work, "registry");
  cpSync(bundleDir, join(registry, "tiny", version), { recursive: true });
  cpSync(bundleDir, join(registry, "tiny", "v2"), { recursive: true });
  writeFileSync(join(registry, "tiny", "CURRENT"), "v2\n");
});

after(() => rmSync(work, { recursive: true, force: true }));

test("splitSpec takes the version after the last @ of the last path segment", () => {
  assert.deepEqual(splitSpec("models@v1"), { path: "models", version: "v1" });
  assert.deepEqual(splitSpec("a@b/models"), { path: "a@b/models" });
  assert.deepEqual(splitSpec("models"), { path: "models" });
});

test("--init-from a registry takes CURRENT, @version selects one, an unknown one is listed", async () => {
  const version = (await readManifest(bundleDir)).version;
  assert.equal((await loadParent(registry)).dir, join(registry, "tiny", "v2"));
  assert.equal((await loadParent(`${registry}@${version}`)).dir, join(registry, "tiny", version));
  await assert.rejects(
    loadParent(`${registry}@nope`),
    (e: Error) =>
      e instanceof WarmStartError && /no version nope \(versions: .*v2\)/.test(e.message),
  );
  await assert.rejects(loadParent(`${bundleDir}@other`), /holds version .*, not other/);
  await assert.rejects(loadParent(join(work, "missing")), /missing does not exist/);
});

test("a warm start begins at the parent's loss, far below a fresh start", async () => {
  const parent = await loadParent(bundleDir);
  const cfg = { ...CFG, epochs: 1 };
  const warm = await trainVae(cfg, data.train, {
    progress: false,
    init: (m) => initFromParent(m, parent),
  });
  const fresh = await trainVae(cfg, data.train, { progress: false });
  const end = parentHistory.at(-1)!.train.loss;
  const w = warm.history[0].train.loss, s = fresh.history[0].train.loss;
  assert.ok(w < end * 1.05, `warm first epoch ${w}, parent's last ${end}`);
  assert.ok(s > end * 1.2, `fresh first epoch ${s}, parent's last ${end}`);
});

test("a grown head keeps the old classes' rows and initialises the new one", async () => {
  const parent = await loadParent(bundleDir);
  const grown = await trainVae(
    { ...CFG, head: { ...CFG.head!, classes: 11 }, epochs: 0 },
    data.train,
    {
      progress: false,
      init: (m) => initFromParent(m, parent),
    },
  );
  const saved = parent.checkpoint;
  const old = saved.header.tensors.flatMap((t, k) => (t.group === "head" ? [saved.values[k]] : []));
  const now = grown.models.head!.getWeights().map((t) => t.dataSync() as Float32Array);
  assert.deepEqual(now.slice(0, -2), old.slice(0, -2), "hidden layers copied");
  const [kernel, bias] = now.slice(-2), [oldKernel, oldBias] = old.slice(-2);
  assert.equal(kernel.length, 8 * 11);
  for (let r = 0; r < 8; r++) {
    assert.deepEqual(kernel.subarray(r * 11, r * 11 + 10), oldKernel.subarray(r * 10, r * 10 + 10));
  }
  assert.deepEqual(bias.subarray(0, 10), oldBias);
  const fresh = Array.from({ length: 8 }, (_, r) => kernel[r * 11 + 10]);
  assert.ok(fresh.some((v) => v !== 0), "the new class's row is initialised, not zero");
  // The old classes' logits are the parent's on the same images.
  const x = tf.tensor2d(new Float32Array(4 * TINY_VAE.latent).map((_, i) => (i % 5) - 2), [
    4,
    TINY_VAE.latent,
  ]);
  const restored = await trainVae({ ...CFG, epochs: 0 }, data.train, {
    progress: false,
    init: (m) => initFromParent(m, parent),
  });
  const a = (grown.models.head!.predict(x) as tf.Tensor2D).slice([0, 0], [4, 10]).dataSync();
  const b = (restored.models.head!.predict(x) as tf.Tensor2D).dataSync();
  assert.deepEqual(Array.from(a), Array.from(b));
});

test("labels: new classes are appended, a dropped or moved class is refused", () => {
  const g = growLabels(["a", "b"], ["0", "a", "b"], false);
  assert.deepEqual(g.labels, ["a", "b", "0"]);
  assert.deepEqual(g.toNew, [2, 0, 1]);
  assert.throws(
    () => growLabels(["a", "b"], ["a", "c"], false),
    /drops the parent's class\(es\) "b"/,
  );
  assert.throws(() => growLabels(["a", "b"], ["b", "a"], true), /reorders .*"a" is 1, was 0/);
  const split = (labels: number[]): Split => ({
    images: new Uint8Array(labels.length * PIXELS),
    labels: Uint8Array.from(labels),
    count: labels.length,
  });
  const folder = {
    ...data,
    kind: "folder" as TrainingData["kind"],
    labels: ["0", "a", "b"],
    train: split([0, 1, 2]),
    val: null,
    test: split([2, 0]),
  };
  const parent = { manifest: { labels: ["a", "b"] } } as Parameters<typeof withParentLabels>[1];
  const moved = withParentLabels(folder, parent, quiet);
  assert.deepEqual(moved.labels, ["a", "b", "0"]);
  assert.deepEqual(Array.from(moved.train.labels), [2, 0, 1]);
  assert.deepEqual(Array.from(moved.test.labels), [1, 2]);
});

test("the weights must reproduce the bundle's probe; a bundle without weights is refused", async () => {
  const bare = join(work, "run", "bundle");
  mkdirSync(bare, { recursive: true });
  const m = await readManifest(bundleDir);
  for (const f of m.files.filter((f) => f.role !== "checkpoint")) {
    cpSync(join(bundleDir, f.path), join(bare, f.path));
  }
  const files = m.files.filter((f) => f.role !== "checkpoint");
  writeFileSync(join(bare, "manifest.json"), JSON.stringify({ ...m, files }));
  await assert.rejects(loadParent(bare), /carries no weights checkpoint \(checkpoint\.bin/);
  // A run directory's checkpoint of another model: loaded, then refused by the probe.
  const other = await trainVae({ ...CFG, seed: 99, epochs: 0 }, data.train, { progress: false });
  writeFileSync(join(work, "run", "checkpoint.bin"), bundleCheckpoint(other.models, CFG, []));
  const parent = await loadParent(join(work, "run"));
  assert.equal(parent.checkpointPath, join(work, "run", "checkpoint.bin"));
  assert.throws(
    () => initFromParent(other.models, parent),
    /miss the bundle's probe by .*they are not this bundle's model/,
  );
});

test("replay mixes round(f x N) parent images, the same under a seed, another under another", async () => {
  const parent = await loadParent(bundleDir);
  const fresh = take(data.test, Array.from({ length: 400 }, (_, i) => i));
  const a = await replayMix(parent, 0.25, fresh, data.labels, 5, load);
  const b = await replayMix(parent, 0.25, fresh, data.labels, 5, load);
  const c = await replayMix(parent, 0.25, fresh, data.labels, 6, load);
  assert.equal(a.train.count, 500);
  assert.equal(a.replay.images, 100);
  assert.equal(a.replay.parentImages, 1024);
  assert.deepEqual(a.train.images.subarray(0, 400 * PIXELS), fresh.images);
  assert.deepEqual(a.train, b.train);
  assert.notDeepEqual(a.train.images, c.train.images);
  // Every replayed image is one of the parent's training images, with its label.
  const key = (s: Split, i: number) =>
    `${s.labels[i]}:${
      Buffer.from(s.images.subarray(i * PIXELS, (i + 1) * PIXELS)).toString("base64")
    }`;
  const parentRows = new Set(
    Array.from({ length: data.train.count }, (_, i) => key(data.train, i)),
  );
  for (let i = 400; i < 500; i++) assert.ok(parentRows.has(key(a.train, i)), `row ${i}`);
  await assert.rejects(
    replayMix(parent, 3, fresh, data.labels, 5, load),
    /1200 parent images; the parent's training data holds 1024/,
  );
});

test("replay refuses a parent whose training data changed or is gone", async () => {
  const parent = await loadParent(bundleDir);
  const fresh = take(data.test, [0, 1, 2, 3]);
  const lineage = {
    ...parent.manifest.lineage!,
    train: { ...parent.manifest.lineage!.train, fingerprint: "0".repeat(64) },
  };
  const changed = { ...parent, manifest: { ...parent.manifest, lineage } };
  await assert.rejects(
    replayMix(changed, 0.5, fresh, data.labels, 1, load),
    /is not what it was trained on: fingerprint/,
  );
  const gone = {
    ...parent,
    manifest: { ...parent.manifest, data: { ...parent.manifest.data, dir: join(work, "nope") } },
  };
  await assert.rejects(
    replayMix(gone, 0.5, fresh, data.labels, 1, load),
    /nope\) is not available/,
  );
});

test("the child's manifest records the parent and replay; a bad lineage is refused", async () => {
  const parent = await loadParent(bundleDir);
  const fresh = take(data.test, Array.from({ length: 64 }, (_, i) => i));
  const mixed = await replayMix(parent, 0.5, fresh, data.labels, 1, load);
  const lineage = lineageOf({ ...data, train: fresh }, parent, mixed.replay);
  assert.equal(lineage.parent!.version, parent.manifest.version);
  assert.equal(lineage.train.images, 64);
  assert.deepEqual(lineage.ancestors, [{
    name: "tiny",
    version: parent.manifest.version,
    train: parent.manifest.lineage!.train.fingerprint,
  }]);
  const m = JSON.parse(readFileSync(join(bundleDir, "manifest.json"), "utf8"));
  assert.deepEqual(validateManifest({ ...m, lineage }).lineage, lineage);
  assert.throws(
    () => validateManifest({ ...m, lineage: { ...lineage, parent: null } }),
    /field "lineage.replay" needs a lineage.parent/,
  );
  assert.throws(
    () =>
      validateManifest({
        ...m,
        lineage: { ...lineage, train: { ...lineage.train, fingerprint: "x" } },
      }),
    /field "lineage.train.fingerprint" must be 64 lowercase hex digits/,
  );
});

function cli(args: string[]) {
  const path = new URL("./cli.ts", import.meta.url).pathname;
  return new Promise<{ code: number | null; err: string }>((resolve) => {
    const p = spawn(process.execPath, ["--import", "tsx", path, ...args]);
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    p.on("close", (code) => resolve({ code, err }));
  });
}

test("train --init-from --replay writes a bundle whose lineage names the parent and the replay", async () => {
  const out = join(work, "child");
  const base = ["--train-count", "256", "--epochs", "1", "--batch-size", "64", "--seed", "3"];
  const r = await cli([...base, "--init-from", bundleDir, "--replay", "0.5", "--out", out]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /warm start from tiny@/);
  assert.match(r.err, /replay: 128 of the parent's 1024 images mixed in/);
  assert.match(r.err, /training on 384 images of 10 classes/);
  const m = await readManifest(join(out, "bundle"));
  const parent = await readManifest(bundleDir);
  assert.equal(m.lineage!.parent!.version, parent.version);
  assert.equal(m.lineage!.train.images, 256);
  assert.equal(m.lineage!.replay!.fingerprint, parent.lineage!.train.fingerprint);
  assert.deepEqual(m.training.vae, parent.training.vae);
  assert.ok(m.files.some((f) => f.role === "checkpoint"), "the child can be a parent in turn");
  const bad = await cli([...base, "--replay", "0.5", "--out", join(work, "x")]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /--replay mixes in a parent's data: it needs --init-from/);
});
