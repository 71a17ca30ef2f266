import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadCheckpoint } from "./checkpoint.ts";

const CLI = new URL("./cli.ts", import.meta.url).pathname;

function run(
  args: string[],
  env: Record<string, string> = {},
  onStderr?: (s: string, kill: (sig: NodeJS.Signals) => void) => void,
) {
  return new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    const p = spawn(process.execPath, ["--import", "tsx", CLI, ...args], {
      env: { ...process.env, ...env },
    });
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => {
      err += d;
      onStderr?.(err, (sig) => p.kill(sig));
    });
    p.on("close", (code) => resolve({ code, out, err }));
  });
}

test("train --help lists the flags and exits 0; an unknown flag exits 2 naming it", async () => {
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /--latent .*\(default 16\)/);
  const bad = await run(["--latnet", "4"]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /Unknown flag --latnet/);
});

test("missing data exits 2 with the file and how to get the data", async () => {
  const r = await run(["--epochs", "1"], { FASHION_MNIST_DIR: "/nonexistent-fmnist" });
  assert.equal(r.code, 2);
  assert.match(r.err, /\/nonexistent-fmnist\/train-images-idx3-ubyte\.gz does not exist/);
  assert.match(r.err, /apt-get install -y dataset-fashion-mnist/);
});

test("Ctrl-C (SIGINT) stops after the current step and leaves a checkpoint that resumes", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cli-"));
  try {
    const args = [
      "--train-count",
      "2048",
      "--epochs",
      "20",
      "--latent",
      "2",
      "--batch-size",
      "64",
      "--head",
      "none",
      "--no-export",
      "--out",
      dir,
    ];
    let sent = false;
    const r = await run(args, {}, (err, kill) => {
      // Interrupt once the second epoch is under way (epoch 1 has written a checkpoint).
      if (!sent && /epoch 2\/20/.test(err)) {
        sent = true;
        kill("SIGINT");
      }
    });
    assert.equal(r.code, 130, r.err);
    assert.match(r.err, /stopped at epoch 2 step \d+; checkpoint saved/);
    const ck = loadCheckpoint<{ epochs: number }>(join(dir, "checkpoint.bin"));
    assert.equal(ck.header.epoch, 1);
    assert.ok(ck.header.stepInEpoch >= 0);
    assert.ok(existsSync(join(dir, "history.json")));
    // The resumed run continues from there (here: asked to stop after epoch 2).
    const resumed = await run([
      "--resume",
      join(dir, "checkpoint.bin"),
      "--epochs",
      "2",
      "--no-export",
      "--out",
      dir,
    ]);
    assert.equal(resumed.code, 0, resumed.err);
    assert.match(resumed.err, /resuming from .*epoch 2, step \d+/);
    assert.equal(loadCheckpoint(join(dir, "checkpoint.bin")).header.epoch, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("--data problems exit 2 with the file, line or class named", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cli-data-"));
  try {
    const missing = await run(["--data", join(dir, "nope"), "--epochs", "1"]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /nope: no such file or directory/);
    const csv = join(dir, "list.csv");
    writeFileSync(csv, "file,label\na.png,x\n");
    const r = await run(["--data", csv, "--epochs", "1"]);
    assert.equal(r.code, 2);
    assert.match(r.err, /list\.csv: line 1: the header has no "path" column/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
