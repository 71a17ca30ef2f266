/**
 * `calibrate-novelty <bundle-dir>`: fits the bundle's novelty score on the Fashion-MNIST
 * training images and writes it, with its percentiles, into the manifest (trainer/novelty.ts).
 */
import type { FlagSpecs } from "../../common/flags.ts";
import { loadFashionMnist, resolveDataDir } from "../data.ts";
import { bundleCommand, DATA_FLAGS } from "./common.ts";

const NOVELTY_FLAGS = {
  "data-dir": DATA_FLAGS["data-dir"],
  percentile: {
    type: "number",
    default: 95,
    help: "default threshold: this percentile of the held-out images",
  },
} satisfies FlagSpecs;

export async function cmdCalibrateNovelty(args: string[], usage: string): Promise<number> {
  const cmd = bundleCommand(
    args,
    NOVELTY_FLAGS,
    usage,
    () => "calibrate-novelty needs one <bundle-dir>",
  );
  if (!cmd) return 0;
  const { calibrateBundle } = await import("../novelty.ts");
  const data = loadFashionMnist(resolveDataDir(cmd.f["data-dir"] as string | undefined));
  const cal = await calibrateBundle(cmd.dir, data.train, {
    thresholdPercentile: cmd.f.percentile as number,
  });
  process.stderr.write(
    `novelty calibrated: Gaussians on ${cal.fit.images} images, percentiles of ${cal.heldOut.images} held-out images; threshold (${cal.threshold.percentile}th percentile) ${
      cal.threshold.score.toFixed(3)
    }\n`,
  );
  return 0;
}
