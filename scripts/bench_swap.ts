/**
 * Publish-to-serving time: from the rename of CURRENT (activateVersion's last step) to the
 * first response that names the new version, with a client polling /v1/classify as fast as it
 * can over 127.0.0.1. The service is assembled as serve/main.ts does it (registry watch,
 * 50 ms debounce). Per backend: median, p90 and max over N swaps alternating the three test
 * fixtures. "warm" waits for the wasm backend's standby worker before each publish (the
 * steady state when publishes are more than ~2 s apart); "cold" does not.
 *
 *   npx deno run -A scripts/bench_swap.ts [--swaps 10] [--backends native,wasm]
 */
import { runFlags } from "./_cli.ts";
import { activateVersion } from "../registry/registry_write.ts";
import { WorkerBackend } from "../serve/inference/mod.ts";
import { makeRegistry, MODEL, probeImages, VERSIONS } from "../testkit/fixtures.ts";
import { backendFor, classify, closeBackends, startService } from "../testkit/swap_service.ts";

const FLAGS = {
  swaps: { type: "int", default: 10, help: "publishes per backend and mode" },
  backends: { type: "string", default: "native,wasm", help: "comma-separated backends" },
} as const;
const values = runFlags(
  FLAGS,
  "Usage: npx deno run -A scripts/bench_swap.ts [--swaps 10] [--backends native,wasm]",
);
const swaps = values.swaps as number;
const image = probeImages()[0];
const stats = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return `median ${q(0.5).toFixed(0)} ms, p90 ${q(0.9).toFixed(0)} ms, max ${
    s[s.length - 1].toFixed(0)
  } ms`;
};

for (const name of (values.backends as string).split(",") as ("native" | "wasm")[]) {
  for (const mode of name === "wasm" ? ["warm", "cold"] : ["warm"]) {
    const reg = await makeRegistry();
    const svc = await startService({ registry: reg.root, backend: name });
    const backend = await backendFor(name);
    const times: number[] = [];
    for (let i = 1; i <= swaps; i++) {
      const target = VERSIONS[i % VERSIONS.length];
      if (mode === "warm" && backend instanceof WorkerBackend) await backend.standbyReady();
      await activateVersion(reg.root, MODEL, target);
      const t0 = performance.now();
      for (;;) {
        const r = await classify(svc.url, image);
        if (r.status !== 200) throw new Error(`request failed with ${r.status}`);
        if (r.version === target) break;
      }
      times.push(performance.now() - t0);
      await svc.reloader.idle(); // the old model retired before the next publish
    }
    console.log(
      `${name.padEnd(6)} ${mode}: publish-to-serving over ${swaps} swaps: ${stats(times)}`,
    );
    await svc.close();
    await reg.cleanup();
  }
}
closeBackends();
