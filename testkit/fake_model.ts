/**
 * A LoadedModel over a fake session (no onnxruntime), for tests of what sits above the model
 * (serve/inference/slot.ts, serve/reload.ts): two labels at 0.5 each, a 1-D latent of zeros,
 * and a manifest with just the fields those layers read. Runs wait for `gate`; `onRelease` hears when the session is released.
 */
import { encodeBase64 } from "../common/base64.ts";
import { PIXELS } from "../common/labels.ts";
import type { Manifest } from "../bundle/mod.ts";
import type { Session } from "../serve/inference/backend.ts";
import { LoadedModel } from "../serve/inference/model.ts";
import { BatchRunner } from "../serve/inference/runner.ts";

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
    probe: { tolerance: 1e-4, cases: [{ pixels: encodeBase64(new Uint8Array(PIXELS)) }] },
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
