/**
 * `recon --checkpoint <file> --out <png>`: a grid of test images above their reconstructions by
 * a trained VAE, and its test -ELBO.
 */
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import type { FlagSpecs } from "../../common/flags.ts";
import { normalizePixels } from "../../common/preprocess.ts";
import { take } from "../data.ts";
import { gridPng, reconstruct } from "../figures.ts";
import { evaluateVae } from "../train.ts";
import { DATA_FLAGS, fromCheckpoint, log, SHARED_FLAGS } from "./common.ts";

/** recon's flags; the test of fromCheckpoint (./common_test.ts) uses them too. */
export const RECON_FLAGS = {
  ...DATA_FLAGS,
  checkpoint: { type: "string", help: "checkpoint.bin of a trained VAE" },
  out: { type: "string", help: "PNG file to write (test images above their reconstructions)" },
  backend: SHARED_FLAGS.backend,
  threads: SHARED_FLAGS.threads,
} satisfies FlagSpecs;

export async function cmdRecon(args: string[], usage: string): Promise<number> {
  const r = await fromCheckpoint("recon", args, RECON_FLAGS, usage, "png");
  if (!r) return 0;
  const { f, data, models, config } = r;
  // Two test images of each class, in class order, so every class shows up in the grid.
  const picks: number[] = [];
  const K = Math.min(10, data.labels.length);
  for (let c = 0; c < K; c++) {
    for (let i = 0, k = 0; i < data.test.count && k < 2; i++) {
      if (data.test.labels[i] === c) picks.push(i), k++;
    }
  }
  const rows = [0, 1].flatMap((parity) => {
    const sub = take(data.test, picks.filter((_, j) => j % 2 === parity));
    return [
      normalizePixels(sub.images),
      reconstruct(models.encoder, models.decoder, config.vae.latent, sub.images, sub.count),
    ];
  });
  writeFileSync(resolve(f.out as string), gridPng(rows, K));
  const elbo = evaluateVae(models, config.vae.latent, data.test, {
    headInput: config.head?.input,
  });
  log(
    `test -ELBO ${elbo.elbo.toFixed(2)} nats (rec ${elbo.rec.toFixed(2)}, KL ${
      elbo.kl.toFixed(2)
    }) on ${data.test.count} test images; grid written to ${f.out}`,
  );
  return 0;
}
