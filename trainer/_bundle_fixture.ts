/**
 * What the writeBundle tests share (bundle_test.ts, bundle_golden_test.ts): tfjs on its cpu
 * backend, the first 300 Fashion-MNIST test images and the data's fingerprint, a work
 * directory removed after the file's tests, and the options of an untrained model on them.
 */
import * as tf from "@tensorflow/tfjs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import type { WriteBundleOptions } from "./bundle.ts";
import { loadFashionMnist, type Split, take } from "./data.ts";
import { buildDecoder, buildEncoder, buildHead, type HeadConfig, type VaeConfig } from "./model.ts";

export const HEAD: HeadConfig = { kind: "mlp", hidden: [8], dropout: 0.1, seed: 7 };

export interface BundleFixture {
  /** The first 300 test images (set in before()). */
  test300: Split;
  fingerprint: Record<string, string>;
  /** A directory for the file's bundles, removed after its tests. */
  work: string;
  /** writeBundle options for an untrained `vae` with HEAD on test300. */
  options(vae: VaeConfig, o?: { decoder?: boolean; note?: string }): WriteBundleOptions;
}

/** Registers the before/after hooks of a writeBundle test file and returns what they set up. */
export function bundleFixture(prefix: string): BundleFixture {
  const fx: BundleFixture = {
    test300: { images: new Uint8Array(0), labels: new Uint8Array(0), count: 0 },
    fingerprint: {},
    work: "",
    options: (vae, { decoder = true, note = "untrained test model" } = {}) => ({
      name: "fashion-vae",
      encoder: buildEncoder(vae),
      decoder: decoder ? buildDecoder(vae) : null,
      head: buildHead(vae.latent, HEAD),
      vaeConfig: vae,
      headConfig: HEAD,
      training: { epochs: 0, note },
      fingerprint: fx.fingerprint,
      test: fx.test300,
      testElbo: 543.2,
    }),
  };
  before(async () => {
    await tf.setBackend("cpu");
    const data = loadFashionMnist();
    fx.test300 = take(data.test, Array.from({ length: 300 }, (_, i) => i));
    fx.fingerprint = data.fingerprint;
    fx.work = await mkdtemp(join(tmpdir(), prefix));
  });
  after(async () => {
    await rm(fx.work, { recursive: true, force: true });
  });
  return fx;
}
