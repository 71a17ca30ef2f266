/**
 * The processes bench_perf starts of itself (`--role ceiling|hello|baseline`), each in its own
 * process so that wrk and every server have their own: the compute ceiling (in-process
 * session.run(), no HTTP), a Hono hello route (the HTTP ceiling), and the baseline (Hono, the
 * service's body parsing, one session, no batching).
 */
import process from "node:process";
import { Hono } from "hono";
import { argmax } from "../../common/argmax.ts";
import { bundleFile, decodeProbePixels, type Precision, servingRole } from "../../bundle/mod.ts";
import { IMAGE_SIZE, PIXELS } from "../../common/labels.ts";
import { loadBackend, type Session } from "../../serve/inference/backend.ts";
import { readImageBatch } from "../../serve/inputs.ts";
import { manifestOf } from "../../testkit/fixtures.ts";

export interface RoleOptions {
  bundle: string;
  backend: "native" | "wasm";
  /** Ceiling and baseline: which serving graph of the bundle the session runs. */
  precision: Precision;
  threads: number;
  /** Server roles: the port (0: any free one). */
  port: number;
  /** Ceiling: measuring time per batch size, in seconds. */
  seconds: number;
}

async function inProcessSession(o: RoleOptions) {
  // isolate: false keeps the session on this thread: no worker, no batching, no pool.
  const { backend: b } = await loadBackend(o.backend, { threads: o.threads, isolate: false });
  const m = manifestOf(o.bundle);
  const file = bundleFile(o.bundle, m, servingRole(m, o.precision));
  const session = await b.createSession(Deno.readFileSync(file));
  return { session, manifest: m };
}

/**
 * Back-to-back session.run() at N=1 and N=256 on one in-process session; prints JSON: images
 * per second (n1, n256) and per CPU-second of this process (cpu1, cpu256).
 */
export async function roleCeiling(o: RoleOptions): Promise<void> {
  const { session, manifest } = await inProcessSession(o);
  const px = decodeProbePixels(manifest.probe.cases[0].pixels);
  const result: Record<string, number> = {};
  for (const n of [1, 256]) {
    const x = new Float32Array(n * PIXELS);
    for (let i = 0; i < n; i++) for (let j = 0; j < PIXELS; j++) x[i * PIXELS + j] = px[j] / 255;
    const feeds = { [manifest.input.name]: { data: x, dims: [n, 1, IMAGE_SIZE, IMAGE_SIZE] } };
    for (let i = 0; i < 20; i++) await session.run(feeds); // warm-up
    let images = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    while (performance.now() - t0 < o.seconds * 1000) {
      await session.run(feeds);
      images += n;
    }
    result[`n${n}`] = images / ((performance.now() - t0) / 1000);
    // On busy shared cores wall time mostly measures the neighbours; CPU time does not.
    const c = process.cpuUsage(c0);
    result[`cpu${n}`] = images / ((c.user + c.system) / 1e6);
  }
  await session.release();
  console.log(JSON.stringify(result));
}

function listen(app: Hono, port: number): void {
  Deno.serve({
    port,
    hostname: "127.0.0.1",
    onListen: ({ port }) => console.log(`Listening on http://127.0.0.1:${port}/`),
  }, app.fetch);
}

export function roleHello(o: RoleOptions): void {
  const app = new Hono();
  app.get("/hello", (c) => c.text("hello"));
  listen(app, o.port);
}

/**
 * The baseline: Hono, the service's body parsing, one in-process session with no batching
 * (requests take turns, one run each), the service's JSON response shape.
 */
export async function roleBaseline(o: RoleOptions): Promise<void> {
  const { session, manifest } = await inProcessSession(o);
  const limits = { maxBodyBytes: 4 << 20, maxPixels: 25_000_000, maxBatch: 256 };
  const K = manifest.labels.length, L = manifest.latentSize, out = manifest.outputs;
  let turn: Promise<unknown> = Promise.resolve();
  const runAlone = (s: Session, feeds: Parameters<Session["run"]>[0]) => {
    const mine = turn.then(() => s.run(feeds));
    turn = mine.catch(() => {});
    return mine;
  };
  const app = new Hono();
  app.post("/v1/classify", async (c) => {
    const batch = await readImageBatch(c.req.raw, limits, "auto");
    const r = await runAlone(session, {
      [manifest.input.name]: {
        data: batch.images,
        dims: [batch.count, 1, IMAGE_SIZE, IMAGE_SIZE],
      },
    });
    const p = r[out.probabilities.name].data, mu = r[out.mu.name].data;
    const lv = r[out.logvar.name].data;
    const predictions = [];
    for (let i = 0; i < batch.count; i++) {
      const index = argmax(p, i * K, K);
      predictions.push({
        label: manifest.labels[index],
        index,
        confidence: p[i * K + index],
        probabilities: Array.from(p.subarray(i * K, (i + 1) * K)),
        latent: {
          mu: Array.from(mu.subarray(i * L, (i + 1) * L)),
          logvar: Array.from(lv.subarray(i * L, (i + 1) * L)),
        },
      });
    }
    return c.json({ model: { name: manifest.name, version: manifest.version }, predictions });
  });
  listen(app, o.port);
}
