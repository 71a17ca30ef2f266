/**
 * `quantize <bundle-dir>`: adds an int8 serving graph beside the fp32 one (trainer/quantize.ts),
 * its ranges calibrated on the first training images. Train and export call quantizeBundle for
 * --int8.
 */
import { FlagError, type FlagSpecs } from "../../common/flags.ts";
import { loadFashionMnist, resolveDataDir, type Split } from "../data.ts";
import { bundleCommand, DATA_FLAGS, log } from "./common.ts";

const QUANTIZE_FLAGS = {
  "data-dir": DATA_FLAGS["data-dir"],
  "calibration-images": {
    type: "int",
    default: 2000,
    help: "first N training images whose activations set the int8 ranges",
  },
} satisfies FlagSpecs;

/** Adds the int8 graph to the bundle in `dir`, calibrated on the first `count` training images. */
export async function quantizeBundle(
  dir: string,
  data: { train: Split; test: Split },
  count: number,
) {
  const { addInt8 } = await import("../quantize.ts");
  if (count < 1 || count > data.train.count) {
    throw new FlagError(
      `--calibration-images must be within [1, ${data.train.count}], got ${count}`,
    );
  }
  const calibration = { images: data.train.images.subarray(0, count * 784), count };
  const m = await addInt8(dir, {
    calibration,
    calibrationSource: `first ${count} training images`,
    test: data.test,
  });
  const q = m.int8!.metrics;
  log(
    `int8 graph added to ${dir}: test accuracy ${(q.testAccuracy * 100).toFixed(2)}% (fp32 ${
      ((q.fp32TestAccuracy as number) * 100).toFixed(2)
    }%), ${m.files.find((f) => f.role === m.int8!.role)!.bytes} bytes (${
      ((q.bytesRelativeToFp32 as number) * 100).toFixed(1)
    }% of fp32)`,
  );
  return m;
}

export async function cmdQuantize(args: string[], usage: string): Promise<number> {
  const cmd = bundleCommand(
    args,
    QUANTIZE_FLAGS,
    usage,
    (n) => `quantize takes one bundle directory, got ${n} argument(s)\n${usage}`,
  );
  if (!cmd) return 0;
  const data = loadFashionMnist(resolveDataDir(cmd.f["data-dir"] as string | undefined));
  await quantizeBundle(cmd.dir, data, cmd.f["calibration-images"] as number);
  return 0;
}
