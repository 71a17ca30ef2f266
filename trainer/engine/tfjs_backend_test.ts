/**
 * initEngine's choices. Backend selection is process-wide, so each case runs in a child
 * process: "auto" falls back from the missing tfjs-node binding to wasm, and 2 wasm threads
 * (the runtime patch in ./threads.ts) start and compute a conv gradient equal to 1 thread's.
 */
import { test } from "node:test";
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Runs initEngine(opts) and one conv filter gradient in a fresh process; returns its report. */
function probe(opts: object): { info: { backend: string; threads: number }; grad: number[] } {
  // A file, not `-e`: wasm pthread workers inherit execArgv, and `--input-type` breaks them.
  const probeFile = path.join(here, "testdata", "probe_engine.ts");
  try {
    const out = execFileSync(
      process.execPath,
      ["--import", "tsx", probeFile, JSON.stringify(opts)],
      { encoding: "utf8", timeout: 120_000, stdio: ["ignore", "pipe", "pipe"] },
    );
    return JSON.parse(out.trim().split("\n").pop()!);
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(
      `engine probe ${JSON.stringify(opts)} failed: ${
        (err.stderr ?? err.message).split("\n").filter((l) => /Error/.test(l)).slice(0, 3).join(
          " | ",
        ).slice(0, 500)
      }`,
    );
  }
}

test("initEngine auto falls back to wasm when the tfjs-node binding is missing", () => {
  const r = probe({ backend: "auto" });
  assert.ok(["tensorflow", "wasm"].includes(r.info.backend), `got ${r.info.backend}`);
});

test("initEngine with 2 wasm threads runs and matches 1 thread", () => {
  const one = probe({ backend: "wasm", threads: 1 });
  const two = probe({ backend: "wasm", threads: 2 });
  assert.equal(one.info.threads, 1);
  assert.equal(two.info.threads, 2);
  const err = Math.max(...one.grad.map((v, i) => Math.abs(v - two.grad[i])));
  const scale = Math.max(1, ...one.grad.map(Math.abs));
  assert.ok(err <= 1e-4 * scale, `max error ${err} (scale ${scale})`);
});

test("initEngine rejects a bad thread count", () => {
  assert.throws(() => probe({ backend: "wasm", threads: 0 }), /threads must be a positive integer/);
});
