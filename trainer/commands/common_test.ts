import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { FlagError } from "../../common/flags.ts";
import { saveCheckpoint, weightGroups } from "../checkpoint.ts";
import { DEFAULT_HEAD, TINY_VAE } from "../model.ts";
import { buildVaeModels, type TrainConfig, type VaeModels } from "../train.ts";
import { fromCheckpoint } from "./common.ts";
import { RECON_FLAGS } from "./recon.ts";

const CONFIG: TrainConfig = {
  vae: { ...TINY_VAE, latent: 3, seed: 4 },
  head: { ...DEFAULT_HEAD, hidden: [8], classes: 10 },
  classWeight: 100,
  epochs: 5,
  batchSize: 32,
  learningRate: 1e-3,
  seed: 4,
  data: { trainCount: 500, valCount: 0 },
};

const work = mkdtempSync(join(tmpdir(), "commands-common-"));
after(() => rmSync(work, { recursive: true, force: true }));

function weightsOf(m: VaeModels): Float32Array[] {
  return [m.encoder, m.decoder, m.head!].flatMap((s) =>
    s.getWeights().map((t) => t.dataSync() as Float32Array)
  );
}

test("fromCheckpoint() rebuilds the checkpoint's models bit for bit from its own config", async () => {
  // Weights of another seed: a fresh initialisation or a training step would not give them back.
  const saved = buildVaeModels({
    ...CONFIG,
    vae: { ...CONFIG.vae, seed: 99 },
    head: { ...CONFIG.head!, seed: 98 },
  });
  const { encoder, decoder, head } = saved;
  const path = join(work, "checkpoint.bin");
  const history = [{ epoch: 1, note: "recorded" }, { epoch: 2, note: "recorded" }];
  saveCheckpoint(path, {
    config: CONFIG,
    epoch: 2,
    stepInEpoch: 0,
    globalStep: 30,
    history,
    groups: weightGroups({ encoder, decoder, head: head! }),
  });
  const r = await fromCheckpoint(
    "recon",
    ["--checkpoint", path, "--out", work],
    RECON_FLAGS,
    "u",
    "png",
  );
  assert.ok(r);
  assert.deepEqual(r.config, CONFIG);
  assert.deepEqual(r.history, history);
  // The checkpoint's split, not the flags' default of all 60,000 images.
  assert.equal(r.data.train.count, 500);
  assert.equal(r.data.test.count, 10000);
  const want = weightsOf(saved), got = weightsOf(r.models);
  assert.equal(got.length, want.length);
  got.forEach((w, i) => assert.deepEqual(w, want[i], `weight ${i}`));
});

test("fromCheckpoint() returns null on --help and names both flags when one is missing", async () => {
  assert.equal(await fromCheckpoint("recon", ["--help"], RECON_FLAGS, "u", "png"), null);
  await assert.rejects(
    fromCheckpoint("recon", ["--checkpoint", "x"], RECON_FLAGS, "u", "png"),
    (e) =>
      e instanceof FlagError && e.message === "recon needs --checkpoint <file> and --out <png>",
  );
});
