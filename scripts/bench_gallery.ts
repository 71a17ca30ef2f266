/**
 * The gallery at catalogue size, on loopback, printing its figures:
 *   1. import: N Fashion-MNIST training images written as PNG files, imported with the CLI's
 *      importFolder (decode, preprocess, embed, SQLite) - wall time and images/s;
 *   2. POST /v1/similar k=10 at --connections (wrk; 100 different latent queries, and one
 *      image query) against a real server process holding the gallery - p50/p99;
 *   3. POST /v1/classify p99 steady, then while the gallery re-embeds all N items after a hot
 *      swap to --to (published with the real publisher, so its bundle maps from --from) - only
 *      wrk windows that ended while re-embedding still ran count.
 *
 *   deno run -A scripts/bench_gallery.ts --from runs/a/bundle --to runs/b/bundle [--items 60000]
 */
import { cp, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readManifest } from "../bundle/mod.ts";
import { encodeGreyPng } from "../common/image_codec.ts";
import { PIXELS } from "../common/labels.ts";
import { activateVersion } from "../registry/registry_write.ts";
import { loadBackend, loadModel, ModelSlot } from "../serve/inference/mod.ts";
import { Gallery } from "../serve/gallery/gallery.ts";
import { importFolder } from "../serve/gallery/import.ts";
import { readSplit } from "../serve/gallery/seed.ts";
import { Translator } from "../serve/latents/translate.ts";
import { publish } from "../trainer/publish.ts";
import { SERVE_PERMISSIONS, startServer } from "../testkit/server_process.ts";
import { runFlags } from "./_cli.ts";
import { DATA_DIR_ENV, DEFAULT_DATA_DIR } from "../common/fashion_mnist.ts";

const f = runFlags({
  from: { type: "string", help: "bundle the gallery is imported with (default: models/ CURRENT)" },
  to: { type: "string", default: "tests/testdata/tiny-bundle", help: "bundle hot-swapped to" },
  items: { type: "int", default: 60000, help: "gallery items (training images)" },
  connections: { type: "int", default: 8, help: "wrk connections" },
  seconds: { type: "int", default: 10, help: "seconds per steady wrk run" },
  window: { type: "int", default: 4, help: "seconds per wrk window during re-embedding" },
  "data-dir": {
    type: "string",
    default: DEFAULT_DATA_DIR,
    env: DATA_DIR_ENV,
    help: "Fashion-MNIST",
  },
  wrk: { type: "string", default: "/usr/bin/wrk", help: "wrk binary" },
  "translation-images": {
    type: "int",
    default: 4000,
    help: "held-out images for the swap's latent translation (fewer: a faster, cheaper map)",
  },
  "server-args": { type: "string", default: "", help: "extra serve flags, space separated" },
}, "Usage: deno run -A scripts/bench_gallery.ts [flags]");

const TOKEN = "bench-gallery-token-0123456789";
const tmp = await mkdtemp(join(tmpdir(), "bench-gallery-"));
const say = (s: string) => console.log(s);

function wrkMs(v: string | undefined): number {
  const m = v?.match(/^([\d.]+)(us|ms|s)$/);
  return m ? Number(m[1]) * (m[2] === "us" ? 1e-3 : m[2] === "s" ? 1e3 : 1) : NaN;
}

/** wrk POSTing the given bodies in turn; returns req/s, p50, p99 (ms) and non-2xx count. */
async function wrk(url: string, bodies: Uint8Array[], type: string, seconds: number) {
  const dir = await mkdtemp(join(tmp, "wrk-"));
  const files = await Promise.all(bodies.map(async (b, i) => {
    const p = join(dir, `${i}.bin`);
    await writeFile(p, b);
    return p;
  }));
  const lua = join(dir, "post.lua");
  await writeFile(
    lua,
    [
      "local bodies = {}",
      ...files.map((p) =>
        `do local h = assert(io.open(${
          JSON.stringify(p)
        }, "rb")); table.insert(bodies, h:read("*all")); h:close() end`
      ),
      "local i = 0",
      `local headers = { ["Content-Type"] = ${JSON.stringify(type)} }`,
      'request = function() i = i % #bodies + 1; return wrk.format("POST", nil, headers, bodies[i]) end',
    ].join("\n"),
  );
  const args = [
    "-t",
    "2",
    "-c",
    String(f.connections),
    "-d",
    `${seconds}s`,
    "--timeout",
    "5s",
    "--latency",
    "-s",
    lua,
    url,
  ];
  const out = await new Deno.Command(f.wrk as string, { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  return {
    rps: Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1]),
    p50: wrkMs(text.match(/\s50%\s+(\S+)/)?.[1]),
    p99: wrkMs(text.match(/\s99%\s+(\S+)/)?.[1]),
    non2xx: Number(text.match(/Non-2xx or 3xx responses:\s+(\d+)/)?.[1] ?? 0),
  };
}
const fmt = (r: { rps: number; p50: number; p99: number; non2xx: number }) =>
  `${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms${
    r.non2xx ? `, ${r.non2xx} non-2xx` : ""
  }`;

async function galleryStatus(url: string) {
  return await (await fetch(`${url}/v1/gallery`)).json();
}

type Manifest = Awaited<ReturnType<typeof readManifest>>;
type Server = Awaited<ReturnType<typeof startServer>>;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLASSIFY = "application/octet-stream";

/** A registry holding `from` (active) and `to`, published over it, so `to` maps from `from`. */
async function makeRegistry(fromDir: string, from: Manifest): Promise<string> {
  const reg = join(tmp, "models");
  await mkdir(join(reg, from.name), { recursive: true });
  await cp(fromDir, join(reg, from.name, from.version), { recursive: true });
  await activateVersion(reg, from.name, from.version, "publish");
  await publish(f.to as string, {
    registry: reg,
    translationOptions: {
      dataDir: f["data-dir"] as string,
      images: f["translation-images"] as number,
      log: say,
    },
  });
  await activateVersion(reg, from.name, from.version);
  return reg;
}

/** Writes n training images as PNG files and imports them; returns the database file. */
async function importImages(fromDir: string, n: number): Promise<string> {
  const train = await readSplit(f["data-dir"] as string, n, "train");
  const folder = join(tmp, "images");
  for (let i = 0; i < train.count; i++) {
    const sub = join(folder, String(Math.floor(i / 1000)));
    if (i % 1000 === 0) await mkdir(sub, { recursive: true });
    await writeFile(
      join(sub, `train-${i}.png`),
      encodeGreyPng(train.images.subarray(i * PIXELS, (i + 1) * PIXELS), 28, 28),
    );
  }
  const db = join(tmp, "gallery.sqlite");
  const { backend } = await loadBackend("native", { threads: 0 });
  const slot = new ModelSlot(await loadModel(fromDir, { backend, maxBatch: 256 }));
  const g = Gallery.open(db, {
    slot,
    translator: new Translator({ minNeighbours: 0.8 }),
    log: () => {},
  });
  await slot.use((m) => g.align(m));
  const r = await importFolder(g, folder);
  say(
    `import: ${r.imported} PNG files in ${r.seconds.toFixed(1)} s (${
      Math.round(r.imported / r.seconds)
    } images/s), ${r.failed.length} failed`,
  );
  await g.close();
  await slot.close();
  return db;
}

/** The server on the registry and gallery; resolves once its search index is built. */
async function serve(reg: string, db: string): Promise<Server> {
  const extra = (f["server-args"] as string).split(" ").filter(Boolean);
  const t0 = performance.now();
  const server = await startServer(
    ["--registry", reg, "--gallery", db, "--poll-ms", "500"]
      .concat(["--backend", "native", ...extra]),
    {
      permissions: [...SERVE_PERMISSIONS, "--allow-write"],
      startTimeoutMs: 120_000,
      // The token never goes on a command line (serve refuses --admin-token).
      env: { ...Deno.env.toObject(), ADMIN_TOKEN: TOKEN },
    },
  );
  let st = await galleryStatus(server.url);
  while (st.search !== "clusters") {
    await sleep(200);
    st = await galleryStatus(server.url);
  }
  say(
    `server up with ${st.items} items, index built, ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s after start`,
  );
  return server;
}

/** 100 test images as request bodies, and their latents (from the active model) as queries. */
async function queries(url: string) {
  const test = await readSplit(f["data-dir"] as string, 100);
  const images = Array.from(
    { length: 100 },
    (_, i) => test.images.slice(i * PIXELS, (i + 1) * PIXELS),
  );
  const latents = async () => {
    const r = await (await fetch(`${url}/v1/latent`, {
      method: "POST",
      headers: { "content-type": CLASSIFY },
      body: test.images.slice(),
    })).json();
    return r.latents.map((l: { mu: number[] }) =>
      new TextEncoder().encode(JSON.stringify({ latent: l.mu, k: 10 }))
    ) as Uint8Array[];
  };
  return { images, latents };
}

/** Hot swap to `to`, classify in windows while the gallery re-embeds, then steady again. */
async function swapUnderLoad(
  url: string,
  reg: string,
  to: Manifest,
  images: Uint8Array[],
  steady: number,
) {
  await activateVersion(reg, to.name, to.version);
  const swapT = performance.now();
  while ((await galleryStatus(url)).latentSpace !== to.version) await sleep(50);
  const st = await galleryStatus(url);
  say(
    `swapped to ${to.version}: ${st.translated} translated, ${st.pending} pending, re-embedding ${
      st.reembedding?.total ?? 0
    }`,
  );
  const windows = [];
  for (;;) {
    const w = await wrk(`${url}/v1/classify`, images, CLASSIFY, f.window as number);
    const s = await galleryStatus(url);
    if (!s.reembedding) break;
    windows.push(w);
    say(`  during re-embedding (${s.reembedding.done}/${s.reembedding.total}): classify ${fmt(w)}`);
  }
  while ((await galleryStatus(url)).reembedding) await sleep(100);
  say(
    `re-embedded ${st.items} items in ${
      ((performance.now() - swapT) / 1000).toFixed(1)
    } s after the swap`,
  );
  if (windows.length) {
    const worst = Math.max(...windows.map((w) => w.p99));
    say(
      `classify p99 steady ${steady.toFixed(2)} ms; during re-embedding worst window ${
        worst.toFixed(2)
      } ms (${(worst / steady).toFixed(2)}x)`,
    );
  }
}

async function main(): Promise<void> {
  const fromDir = (f.from as string | undefined) ??
    join("models", "fashion-vae", Deno.readTextFileSync("models/fashion-vae/CURRENT").trim());
  const from = await readManifest(fromDir), to = await readManifest(f.to as string);
  const n = f.items as number, sec = f.seconds as number, c = f.connections;
  say(
    `gallery bench: ${n} items, from ${from.version} (latent ${from.latentSize}) to ${to.version} (latent ${to.latentSize}); load ${
      Deno.loadavg().map((x) => x.toFixed(1)).join(" ")
    }`,
  );
  const reg = await makeRegistry(fromDir, from);
  const db = await importImages(fromDir, n);
  const server = await serve(reg, db);
  try {
    const url = server.url, q = await queries(url);
    const similar = await wrk(`${url}/v1/similar`, await q.latents(), "application/json", sec);
    say(`/v1/similar k=10, latent queries, ${c} connections: ${fmt(similar)}`);
    const byImage = await wrk(`${url}/v1/similar?k=10`, q.images, CLASSIFY, sec);
    say(`/v1/similar?k=10, image queries, ${c} connections: ${fmt(byImage)}`);
    const steady = await wrk(`${url}/v1/classify`, q.images, CLASSIFY, sec);
    say(`/v1/classify steady, ${c} connections: ${fmt(steady)}`);
    await swapUnderLoad(url, reg, to, q.images, steady.p99);
    const steadyAfter = await wrk(`${url}/v1/classify`, q.images, CLASSIFY, sec);
    say(`/v1/classify steady again after re-embedding: ${fmt(steadyAfter)}`);
    const after = await wrk(`${url}/v1/similar`, await q.latents(), "application/json", sec);
    say(`/v1/similar k=10 after the swap (${to.latentSize}-d): ${fmt(after)}`);
  } finally {
    await server.stop();
  }
}

try {
  await main();
} finally {
  await rm(tmp, { recursive: true, force: true });
}
