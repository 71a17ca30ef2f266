/**
 * Canary and shadow traffic on a real server process (native backend, registry followed by
 * 100 ms polls) under `--concurrency` keyed loops: the canary share of 10,000 distinct keys at
 * 20%, stickiness over a re-send, failures and 5xx while promoting and aborting under load,
 * the shadow's agreement for a twin (identical graphs) and for another version against the
 * offline agreement on the same Fashion-MNIST test images, and primary p99 with the shadow off
 * and on. Run: deno run -A scripts/bench_canary.ts [--requests 10000] [--concurrency 32]
 */
import { join } from "node:path";
import { parseFlags } from "../common/flags.ts";
import { activateVersion } from "../registry/registry_write.ts";
import { abortCanary, promoteCanary, setShadow, startCanary } from "../registry/traffic.ts";
import { makeRegistry, MODEL, VERSIONS } from "../testkit/fixtures.ts";
import { keyedLoad, type KeyedLoadResult, quantile } from "../testkit/keyed_load.ts";
import { startServer } from "../testkit/server_process.ts";
import { expectedLabels } from "../testkit/swap_service.ts";
import { imageAt, readTestImages } from "../testkit/test_images.ts";
import { addTwin, TWIN } from "../testkit/traffic_service.ts";
import { waitFor } from "../testkit/wait.ts";

const { flags } = parseFlags(Deno.args, {
  requests: { type: "int", default: 10_000, help: "keyed requests for the share" },
  concurrency: { type: "int", default: 32, help: "concurrent request loops" },
  images: { type: "int", default: 1000, help: "Fashion-MNIST test images sent" },
});
const N = flags.requests as number, C = flags.concurrency as number;
const test = readTestImages(flags.images as number);
if (!test) throw new Error("Fashion-MNIST test images not found (FASHION_MNIST_DIR)");
const images = Array.from({ length: test.count }, (_, i) => imageAt(test, i));

async function models(url: string) {
  return await (await fetch(`${url}/v1/models`)).json();
}

function line(what: string, r: KeyedLoadResult): string {
  return `${what}: ${r.versions.length} requests in ${r.seconds.toFixed(1)} s (${
    Math.round(r.versions.length / r.seconds)
  } req/s), failures ${r.failures}, 5xx ${r.status5xx}, p50 ${
    quantile(r.latenciesMs, 0.5).toFixed(2)
  } ms, p99 ${quantile(r.latenciesMs, 0.99).toFixed(2)} ms`;
}

async function canaryPart(url: string, root: string) {
  const base = { url, concurrency: C, image: (i: number) => images[i % images.length] };
  const share = await keyedLoad({ ...base, requests: N, key: (i) => `client-${i}` });
  const onCanary = share.versions.filter((v) => v === VERSIONS[1]).length;
  console.log(line("canary 20%", share));
  console.log(`  canary share: ${(onCanary / N * 100).toFixed(2)}% of ${N} distinct keys`);
  const again = await keyedLoad({ ...base, requests: N, key: (i) => `client-${i}` });
  const moved = again.versions.filter((v, i) => v !== share.versions[i]).length;
  console.log(`  stickiness: ${moved} of ${N} keys answered by another version on re-send`);
  const promote = await keyedLoad({
    ...base,
    requests: N,
    key: (i) => `p-${i}`,
    onStart: (i) => void (i === N / 4 && promoteCanary(root, MODEL)),
  });
  console.log(line("promote under load", promote));
  await startCanary(root, MODEL, VERSIONS[2], 50);
  await waitFor(async () => (await models(url)).traffic?.canary?.routing === true, "canary");
  const abort = await keyedLoad({
    ...base,
    requests: N,
    key: (i) => `a-${i}`,
    onStart: (i) => void (i === N / 4 && abortCanary(root, MODEL, "bench abort")),
  });
  console.log(line("abort under load", abort));
}

async function shadowAgreement(url: string, root: string, version: string) {
  await setShadow(root, MODEL, version);
  await waitFor(async () => (await models(url)).traffic?.shadow?.loaded === true, "shadow");
  const r = await keyedLoad({
    url,
    concurrency: C,
    requests: N,
    key: () => null,
    image: (i) => images[i % images.length],
  });
  await new Promise((res) => setTimeout(res, 1000)); // the queue drains
  return { r, s: (await models(url)).traffic.shadow };
}

async function shadowPart(url: string, root: string) {
  // Back to the first fixture, whose twin the identical-model comparison needs.
  await activateVersion(root, MODEL, VERSIONS[0]);
  await waitFor(async () => (await models(url)).active.version === VERSIONS[0], "primary");
  const primary = VERSIONS[0];
  const expected = await expectedLabels(images);
  const offline = (v: string) => {
    const a = expected.get(primary)!, b = expected.get(v === TWIN ? VERSIONS[0] : v)!;
    return a.filter((x, i) => x === b[i]).length / a.length;
  };
  const off = await keyedLoad({
    url,
    concurrency: C,
    requests: N,
    key: () => null,
    image: (i) => images[i % images.length],
  });
  console.log(line("shadow off", off));
  for (const v of [TWIN, VERSIONS[2]]) {
    const { r, s } = await shadowAgreement(url, root, v);
    console.log(line(`shadow ${v} on`, r));
    console.log(
      `  agreement ${(s.agreement * 100).toFixed(2)}% (offline ${
        (offline(v) * 100).toFixed(2)
      }%) over ${s.compared} compared images, mean latent distance ${
        s.meanLatentDistance?.toFixed(4)
      }, dropped ${s.dropped}; primary p99 ${quantile(r.latenciesMs, 0.99).toFixed(2)} ms on vs ${
        quantile(off.latenciesMs, 0.99).toFixed(2)
      } ms off (${(quantile(r.latenciesMs, 0.99) / quantile(off.latenciesMs, 0.99)).toFixed(2)}x)`,
    );
  }
}

const reg = await makeRegistry();
await addTwin(reg.root);
await startCanary(reg.root, MODEL, VERSIONS[1], 20);
const server = await startServer(
  ["--registry", reg.root, "--model", MODEL, "--backend", "native", "--poll-ms", "100"],
);
try {
  await waitFor(async () => (await models(server.url)).traffic?.canary?.routing, "canary", 30_000);
  console.log(`server ${server.url}, ${C} connections, registry ${join(reg.root, MODEL)}`);
  await canaryPart(server.url, reg.root);
  await shadowPart(server.url, reg.root);
} finally {
  await server.stop();
  await reg.cleanup();
}
