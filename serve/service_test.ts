import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { manifestOf, TINY_BUNDLE } from "../testkit/fixtures.ts";
import {
  buildService,
  type Closing,
  listeningLine,
  type Runtime,
  type Service,
} from "./service.ts";

const VERSION = manifestOf(TINY_BUNDLE).version;

function runtime(args: string[], extra: Partial<Runtime> = {}): Runtime {
  return { args, env: {}, cores: 2, fileEvents: false, decodeWorkers: false, ...extra };
}

/** A server stand-in that counts how it was closed. */
function closingLog(): Closing & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    shutdown: () => Promise.resolve(void calls.push("shutdown")),
    abort: () => Promise.resolve(void calls.push("abort")),
  };
}

async function built(rt: Runtime): Promise<Service> {
  const s = await buildService(rt);
  if (typeof s === "number") throw new Error(`buildService exited with ${s}`);
  return s;
}

Deno.test("buildService returns the exit code for bad flags (2), --help (0) and a runtime's refusal", async () => {
  assert.equal(await buildService(runtime(["--no-such-flag"])), 2);
  assert.equal(await buildService(runtime(["--help"])), 0);
  let asked = 0;
  const refuse = runtime(["--bundle", TINY_BUNDLE], { prepare: () => (asked++, 7) });
  assert.equal(await buildService(refuse), 7);
  assert.equal(asked, 1);
});

Deno.test("buildService serves the bundle with the runtime's metrics, and stop() drains once then releases", async () => {
  const rt = runtime(["--bundle", TINY_BUNDLE, "--backend", "native", "--threads", "1"], {
    prepare: (c) => ({ ...c, maxBatch: 5 }),
    renderMetrics: (own) => () => Promise.resolve(`# merged\n${own()}`),
  });
  const s = await built(rt);
  assert.equal(s.config.maxBatch, 5, "prepare's config is the one served");
  assert.equal(s.first?.version, VERSION);
  assert.equal(
    listeningLine("0.0.0.0", 8080, s, "; x"),
    `Listening on http://localhost:8080/ (serving fashion-vae@${VERSION}; docs at /docs; x)`,
  );
  const ready = await s.app.request("/readyz");
  assert.equal(ready.status, 200);
  assert.equal((await ready.json()).model.version, VERSION);
  const metrics = await (await s.app.request("/metrics")).text();
  assert.match(metrics, /^# merged\n/);
  assert.match(metrics, /model_ready 1/);
  assert.equal((await (await s.app.request("/v1/models")).json()).traffic.canary, null);
  const closing = closingLog();
  const stopping = s.stop(closing);
  assert.equal(s.stop(closingLog()), stopping, "a second stop is the same stop");
  await stopping;
  assert.deepEqual(closing.calls, ["shutdown"]);
  assert.equal(s.slot.current, null);
  assert.equal((await s.app.request("/healthz")).status, 503, "new requests are refused");
});

Deno.test("buildService on an empty registry starts unready: /readyz 503, /healthz 200", async () => {
  const root = await mkdtemp(join(tmpdir(), "service-empty-"));
  try {
    const s = await built(runtime(["--registry", root, "--backend", "native", "--poll-ms", "0"]));
    assert.equal(s.first, null);
    assert.match(listeningLine("127.0.0.1", 1, s), /NOT READY: \/readyz answers 503/);
    assert.equal((await s.app.request("/readyz")).status, 503);
    assert.equal((await s.app.request("/healthz")).status, 200);
    await s.stop(closingLog());
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
