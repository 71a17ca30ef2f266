/**
 * A LoadedModel over a fake session, for tests of what sits above the model (slot, reloader):
 * two labels at 0.5 each, a 1-D latent of zeros, and a manifest with just the fields those
 * layers read. Runs wait for `gate`; `onRelease` hears when the session is released.
 */
import type { Manifest } from "../../common/manifest.ts";
import type { Session } from "./backend.ts";
import { LoadedModel } from "./model.ts";
import { BatchRunner } from "./runner.ts";

export function fakeModel(
  version: string,
  opts: {
    gate?: Promise<void>;
    onRelease?: () => void;
    dir?: string;
    backend?: "native" | "wasm";
  } = {},
): LoadedModel {
  const session: Session = {
    inputNames: ["image"],
    outputNames: ["probabilities", "mu", "logvar"],
    async run(feeds) {
      await opts.gate;
      const n = feeds.image.dims[0];
      return {
        probabilities: { data: new Float32Array(n * 2).fill(0.5), dims: [n, 2] },
        mu: { data: new Float32Array(n), dims: [n, 1] },
        logvar: { data: new Float32Array(n), dims: [n, 1] },
      };
    },
    release() {
      opts.onRelease?.();
      return Promise.resolve();
    },
  };
  const manifest = {
    name: "m",
    version,
    labels: ["a", "b"],
    latentSize: 1,
    input: { name: "image" },
    outputs: {
      probabilities: { name: "probabilities" },
      mu: { name: "mu" },
      logvar: { name: "logvar" },
    },
    decoder: null,
    probe: { tolerance: 1e-4, cases: [{ pixels: btoa("\0".repeat(784)) }] },
  } as unknown as Manifest;
  return new LoadedModel(
    manifest,
    opts.dir ?? `/fake/${version}`,
    opts.backend ?? "native",
    new BatchRunner(session, { maxBatch: 8 }),
    null,
    8,
  );
}
