/**
 * Bad publishes: a corrupt bundle (model.onnx bytes changed, sha256 no longer matches), a
 * partial one (decoder.onnx missing), one whose graph takes a different input shape (32x32,
 * checksums made consistent) and one whose probe set does not reproduce (a recorded value
 * moved by 0.5). Each is refused by the publisher with CURRENT left alone; then each is forced
 * into the registry by hand (copied, CURRENT rewritten), and the running service (wasm backend,
 * watching the registry) rejects it: the old version keeps answering, /readyz stays 200, and the
 * rejection shows in /v1/models lastError and in /metrics. A good publish afterwards is followed.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeFileAtomic } from "../registry/registry_write.ts";
import { FIXTURES, makeRegistry, MODEL, probeImages, VERSIONS } from "../testkit/fixtures.ts";
import { classify, closeBackends, startService } from "../testkit/swap_service.ts";
import { waitFor } from "../testkit/wait.ts";
import { publish } from "../trainer/publish.ts";

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;
type Edit = (dir: string, manifest: Json) => Promise<void>;

async function rehash(dir: string, manifest: Json, path: string) {
  const bytes = await readFile(join(dir, path));
  const f = manifest.files.find((x: { path: string }) => x.path === path);
  f.sha256 = createHash("sha256").update(bytes).digest("hex");
  f.bytes = bytes.length;
}

/** Sets the graph input "image" to [N, 1, 32, 32] in place (same byte length). */
function widenInput(onnx: Uint8Array): void {
  const name = new TextEncoder().encode("image");
  for (let i = 0; i < onnx.length - 40; i++) {
    // ValueInfoProto: field 1 (name, len 5) "image", then field 2 (type).
    if (
      onnx[i] === 0x0a && onnx[i + 1] === 5 && name.every((c, j) => onnx[i + 2 + j] === c) &&
      onnx[i + 7] === 0x12
    ) {
      let patched = 0;
      for (let j = i + 8; j < i + 40 && patched < 2; j++) {
        // Dimension {dim_value: 28} = 0a 02 08 1c
        if (onnx[j] === 0x0a && onnx[j + 1] === 2 && onnx[j + 2] === 0x08 && onnx[j + 3] === 28) {
          onnx[j + 3] = 32;
          patched++;
        }
      }
      if (patched === 2) return;
    }
  }
  throw new Error("cannot find the image input's 28x28 dims in model.onnx");
}

const BAD: {
  what: string;
  version: string;
  edit: Edit;
  publishError: RegExp;
  serveError: RegExp;
}[] = [
  {
    what: "corrupt model.onnx",
    version: "bad-corrupt",
    edit: async (dir) => {
      const b = await readFile(join(dir, "model.onnx"));
      b[b.length >> 1] ^= 0xff;
      await writeFile(join(dir, "model.onnx"), b);
    },
    publishError: /model\.onnx: sha256 is .* \(corrupt or replaced file\)/,
    serveError: /sha256/,
  },
  {
    what: "partial bundle (decoder.onnx missing)",
    version: "bad-partial",
    edit: (dir) => rm(join(dir, "decoder.onnx")),
    publishError: /decoder\.onnx: is listed in the manifest .* cannot be read/,
    serveError: /decoder\.onnx: is listed/,
  },
  {
    what: "wrong input shape",
    version: "bad-shape",
    edit: async (dir, m) => {
      const b = new Uint8Array(await readFile(join(dir, "model.onnx")));
      widenInput(b);
      await writeFile(join(dir, "model.onnx"), b);
      await rehash(dir, m, "model.onnx");
    },
    publishError: /input "image" has shape \["N",1,32,32\]|cannot load/,
    serveError: /input "image" has shape|cannot load/,
  },
  {
    what: "probe set not reproduced",
    version: "bad-probe",
    edit: (_dir, m) => {
      m.probe.cases[0].mu[0] += 0.5;
      return Promise.resolve();
    },
    publishError: /probe case 0: mu\[0\] is .* exceeds tolerance/,
    serveError: /probe case 0/,
  },
];

Deno.test({
  name:
    "corrupt, partial, wrong-shape and probe-failing bundles are refused by publish and rejected by the service; the old version keeps serving",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const reg = await makeRegistry();
    const work = await mkdtemp(join(tmpdir(), "swap-bad-"));
    const svc = await startService({ registry: reg.root, backend: "wasm" });
    const image = probeImages()[0];
    const current = () => Deno.readTextFile(join(reg.root, MODEL, "CURRENT")).then((s) => s.trim());
    try {
      for (const [n, bad] of BAD.entries()) {
        const dir = join(work, bad.version);
        await cp(FIXTURES[1], dir, { recursive: true });
        const manifest = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8"));
        manifest.version = bad.version;
        await bad.edit(dir, manifest);
        await writeFile(join(dir, "manifest.json"), JSON.stringify(manifest));

        // 1. The publisher refuses it and leaves CURRENT alone.
        const before = await current();
        await assert.rejects(publish(dir, { registry: reg.root }), bad.publishError, bad.what);
        assert.equal(await current(), before);

        // 2. Forced in by hand: the service rejects it and keeps serving the old version.
        await cp(dir, join(reg.root, MODEL, bad.version), { recursive: true });
        await writeFileAtomic(join(reg.root, MODEL, "CURRENT"), bad.version + "\n");
        await waitFor(
          () => svc.reloader.status().failures === n + 1,
          `the service to reject ${bad.what}`,
        );
        const models = await (await fetch(`${svc.url}/v1/models`)).json();
        assert.equal(models.active.version, VERSIONS[0]);
        assert.equal(models.lastError.version, bad.version);
        assert.match(models.lastError.message, bad.serveError, bad.what);
        assert.ok(Date.now() - Date.parse(models.lastError.time) < 60_000);
        const ready = await fetch(`${svc.url}/readyz`);
        assert.equal(ready.status, 200);
        await ready.body?.cancel();
        const r = await classify(svc.url, image);
        assert.equal(r.status, 200);
        assert.equal(r.version, VERSIONS[0]);
        const metrics = await (await fetch(`${svc.url}/metrics`)).text();
        assert.match(metrics, new RegExp(`^model_reload_failures_total ${n + 1}$`, "m"));
        assert.match(metrics, /^model_ready 1$/m);
        assert.ok(
          svc.logs.some((l) => l.startsWith(`Rejected ${MODEL}@${bad.version}`)),
          svc.logs.join("\n"),
        );
      }
      // Repeated change events do not reload a version already rejected with the same files.
      const failures = svc.reloader.status().failures;
      const again = await svc.reloader.request({ kind: "follow", reason: "test" });
      assert.equal(again.status, "failed");
      assert.equal(svc.reloader.status().failures, failures);
      // A good publish afterwards is followed.
      const good = await publish(FIXTURES[1], { registry: reg.root });
      assert.equal(good.version, VERSIONS[1]);
      await waitFor(() => svc.slot.current?.version === VERSIONS[1], "the good version to serve");
      assert.equal((await classify(svc.url, image)).version, VERSIONS[1]);
    } finally {
      await svc.close();
      await reg.cleanup();
      await rm(work, { recursive: true, force: true });
      closeBackends();
    }
  },
});
