/**
 * Builds the small committed test bundle (tests/testdata/tiny-bundle) and its reference file
 * (tests/testdata/tiny-bundle-expected.json): TINY_VAE trained jointly with a small MLP head
 * (negative ELBO + weighted cross-entropy, trainer/train.ts) on a few thousand real training
 * images with the trainer's engine (trainer/engine), then written with trainer/bundle.ts
 * writeBundle, evaluated on the first 1000 test images. Seeded and well under a minute, so the
 * service and its tests have a real, small, exported model without running the full trainer.
 * (The committed fixtures were made with the tfjs cpu backend before the engine existed; a
 * re-run gives equivalent, not bit-identical, bundles.)
 *
 *   node --import tsx scripts/make_tiny_bundle.ts [--out tests/testdata/tiny-bundle] [--epochs 2]
 */
import * as ort from "onnxruntime-node";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { argmax } from "../common/argmax.ts";
import { bundleFile, readManifest } from "../bundle/mod.ts";
import { DATA_DIR_ENV } from "../common/fashion_mnist.ts";
import { FlagError, type FlagSpecs, parseCommandFlags } from "../common/flags.ts";
import { IMAGE_SIZE, PIXELS } from "../common/labels.ts";
import { encodeProbePixels } from "../bundle/mod.ts";
import { normalizePixels, toBytes } from "../common/preprocess.ts";
import { writeBundle } from "../trainer/bundle.ts";
import { initEngine } from "../trainer/engine/tfjs_backend.ts";
import { loadFashionMnist, resolveDataDir, stratifiedSubset, take } from "../trainer/data.ts";
import { type HeadConfig, TINY_VAE } from "../trainer/model.ts";
import { evaluateVae, type TrainConfig, trainVae } from "../trainer/train.ts";

const FLAGS = {
  out: { type: "string", default: "tests/testdata/tiny-bundle", help: "bundle directory to write" },
  expected: {
    type: "string",
    default: "tests/testdata/tiny-bundle-expected.json",
    help: "reference inputs/outputs file to write",
  },
  "data-dir": {
    type: "string",
    help: "directory with the four Fashion-MNIST IDX .gz files",
    env: DATA_DIR_ENV,
  },
  "train-count": { type: "int", default: 6000, help: "stratified training subset size" },
  "test-count": {
    type: "int",
    default: 1000,
    help: "first N test images the metrics are computed on",
  },
  epochs: { type: "int", default: 2, help: "training epochs" },
  "batch-size": {
    type: "int",
    default: 32,
    help: "images per Adam step (small: more steps from few images)",
  },
  lr: { type: "number", default: 4e-3, help: "Adam learning rate" },
  seed: { type: "int", default: 1, help: "seed for the subset, weights, shuffling and noise" },
} satisfies FlagSpecs;

const USAGE = "Usage: node --import tsx scripts/make_tiny_bundle.ts [flags]";

/** A small MLP head: enough capacity for a 2-D latent, few enough weights to keep the bundle tiny. */
const TINY_HEAD: HeadConfig = { kind: "mlp", hidden: [32], dropout: 0, seed: 7 };

async function main(args: string[]): Promise<number> {
  const f = parseCommandFlags(args, FLAGS, USAGE, process.env);
  if (!f) return 0;
  const log = (s: string) => process.stderr.write(s + "\n");
  const engine = await initEngine({ log });
  const t0 = performance.now();

  const data = loadFashionMnist(resolveDataDir(f["data-dir"] as string | undefined));
  const seed = f.seed as number;
  const train = stratifiedSubset(data.train, f["train-count"] as number, seed);
  const testCount = f["test-count"] as number;
  const test = take(data.test, Array.from({ length: testCount }, (_, i) => i));

  const cfg: TrainConfig = {
    vae: { ...TINY_VAE, seed },
    head: TINY_HEAD,
    // The tiny 2-D latent must carry the class; a heavy cross-entropy weight buys accuracy.
    classWeight: 100,
    epochs: f.epochs as number,
    batchSize: f["batch-size"] as number,
    learningRate: f.lr as number,
    seed,
  };
  log(
    `training TINY_VAE + MLP head on ${train.count} images for ${cfg.epochs} epochs (${engine.description})`,
  );
  const { models, history } = await trainVae(cfg, train, {
    progress: false,
    log,
    onEpoch: (r) =>
      log(
        `epoch ${r.epoch}: loss ${r.train.loss.toFixed(1)} acc ${
          (r.train.acc * 100).toFixed(1)
        }% (${r.seconds.toFixed(1)} s)`,
      ),
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const elbo = evaluateVae(models, cfg.vae.latent, test);

  const out = f.out as string;
  const manifest = await writeBundle(out, {
    name: "fashion-vae",
    encoder: models.encoder,
    decoder: models.decoder,
    head: models.head!,
    vaeConfig: cfg.vae,
    headConfig: cfg.head!,
    training: {
      ...cfg,
      engine: engine.description,
      seconds: Math.round(trainSeconds * 10) / 10,
      history: history.map((h) => ({ epoch: h.epoch, loss: h.train.loss, acc: h.train.acc })),
      purpose: "tiny test bundle (scripts/make_tiny_bundle.ts); not for serving",
    },
    fingerprint: data.fingerprint,
    data: {
      trainImages: train.count,
      trainSubset: `stratifiedSubset(train, ${train.count}, seed ${seed})`,
      evaluation: { split: "test", first: testCount, count: testCount },
    },
    test,
    testElbo: elbo.elbo,
    latentMapPoints: Math.min(1000, testCount),
  });
  log(
    `bundle ${manifest.name}@${manifest.version} written to ${out}: test accuracy ${
      (manifest.metrics.testAccuracy * 100).toFixed(1)
    }% on ${testCount} images, -ELBO ${elbo.elbo.toFixed(1)}`,
  );

  await writeExpected(f.expected as string, out, manifest.version, test);
  log(
    `reference outputs written to ${f.expected}; total ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
  return 0;
}

const round = (a: ArrayLike<number>, d = 7) => Array.from(a, (x) => +x.toFixed(d));

/**
 * Reference inputs and outputs of the written files, computed by onnxruntime-node from the files
 * themselves: five images (the first four test images, which are not probe cases, and an
 * all-black image) through model.onnx, and two latent points through decoder.onnx.
 */
async function writeExpected(
  path: string,
  dir: string,
  version: string,
  test: { images: Uint8Array; labels: Uint8Array | Uint16Array },
) {
  const manifest = await readManifest(dir);
  const images: Uint8Array[] = [0, 1, 2, 3].map((i) =>
    test.images.slice(i * PIXELS, (i + 1) * PIXELS)
  );
  images.push(new Uint8Array(PIXELS));
  const n = images.length;
  const x = new Float32Array(n * PIXELS);
  images.forEach((im, i) => normalizePixels(im, x.subarray(i * PIXELS, (i + 1) * PIXELS)));
  const model = await ort.InferenceSession.create(
    await readFile(bundleFile(dir, manifest, "model")),
  );
  const r = await model.run({
    [manifest.input.name]: new ort.Tensor("float32", x, [n, 1, IMAGE_SIZE, IMAGE_SIZE]),
  });
  await model.release();
  const K = manifest.labels.length, L = manifest.latentSize;
  const P = r[manifest.outputs.probabilities.name].data as Float32Array;
  const M = r[manifest.outputs.mu.name].data as Float32Array;
  const V = r[manifest.outputs.logvar.name].data as Float32Array;
  const cases = images.map((im, i) => {
    const p = P.subarray(i * K, (i + 1) * K);
    const index = argmax(p);
    return {
      what: i < 4 ? `test image ${i}` : "all-black image",
      ...(i < 4 ? { trueLabel: test.labels[i] } : {}),
      pixels: encodeProbePixels(im),
      index,
      label: manifest.labels[index],
      probabilities: round(p),
      mu: round(M.subarray(i * L, (i + 1) * L)),
      logvar: round(V.subarray(i * L, (i + 1) * L)),
    };
  });
  const z = new Float32Array(2 * L);
  z.set(M.subarray(0, L), L); // [0, ..., 0] and the first test image's mu
  const dec = await ort.InferenceSession.create(
    await readFile(bundleFile(dir, manifest, "decoder")),
  );
  const d = await dec.run({ [manifest.decoder!.input.name]: new ort.Tensor("float32", z, [2, L]) });
  await dec.release();
  const px = d[manifest.decoder!.output.name].data as Float32Array;
  const decoded = [0, 1].map((i) => ({
    z: round(z.subarray(i * L, (i + 1) * L)),
    // Rounded to bytes to keep the file small: compare decoded pixels within 1/255.
    pixels: encodeProbePixels(toBytes(px.subarray(i * PIXELS, (i + 1) * PIXELS))),
  }));
  const doc = {
    about:
      "Reference inputs/outputs of tests/testdata/tiny-bundle computed with onnxruntime-node. Pixels are base64 uint8 (784, row-major, light on dark); the model input is pixels/255 as NCHW [N,1,28,28]. Values are rounded to 7 decimals.",
    bundleVersion: version,
    tolerance: { probabilities: 1e-4, mu: 1e-4, logvar: 1e-4, decodedPixelBytes: 1 },
    model: { input: manifest.input.name, cases },
    decoder: {
      input: manifest.decoder!.input.name,
      output: manifest.decoder!.output.name,
      cases: decoded,
    },
  };
  await mkdir(dirname(path), { recursive: true });
  const tmp = join(dirname(path), `.tiny-bundle-expected.${process.pid}.tmp`);
  await writeFile(tmp, JSON.stringify(doc, null, 2) + "\n");
  await rename(tmp, path);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  if (e instanceof FlagError) {
    console.error(`${e.message}\n${USAGE} (--help lists the flags)`);
    process.exitCode = 2;
  } else {
    throw e;
  }
}
