/// <reference lib="dom" />
/// <reference lib="deno.ns" />
/**
 * Bring your own images, end to end: a 3-class image folder made here (PNG and JPEG, mixed
 * sizes, grey / RGB / RGBA, light and dark backgrounds, one corrupt file, class names with a
 * space and a non-ASCII letter) is trained on by the real trainer CLI (tiny architecture, two
 * epochs), exported, published to a registry and served: /v1/classify answers with those
 * class names, /v1/models lists them, the bundle's samples are served, and the demo page in a
 * real Chromium shows the names and the samples. The same from a CSV listing.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readManifest } from "../bundle/mod.ts";
import { resolveActive } from "../registry/registry.ts";
import {
  makeShapeFolder,
  SHAPE_CLASSES,
  writeCsv,
} from "../trainer/datasets/testdata/make_dataset.ts";
import { startServer } from "../testkit/server_process.ts";
import { serveBundle } from "../testkit/serve_bundle.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/** The trainer CLI under Node, as `deno task train` runs it; resolves to its exit and output. */
async function train(args: string[]): Promise<{ code: number; err: string }> {
  const out = await new Deno.Command("node", {
    args: ["--import", "tsx", "trainer/cli.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  return { code: out.code, err };
}

const TINY = [
  "--arch",
  "tiny",
  "--latent",
  "2",
  "--epochs",
  "2",
  "--batch-size",
  "8",
  "--no-progress",
  "--test-fraction",
  "0.2",
];

async function classify(
  app: { request: (p: string, i: RequestInit) => Response | Promise<Response> },
  png: Uint8Array,
) {
  const r = await app.request("/v1/classify", {
    method: "POST",
    headers: { "Content-Type": "image/png" },
    body: png as Uint8Array<ArrayBuffer>,
  });
  assert.equal(r.status, 200);
  return (await r.json()).predictions[0];
}

Deno.test("an image folder of 3 classes trains, publishes and is served with its own class names and samples", async () => {
  const work = mkdtempSync(join(tmpdir(), "own-data-e2e-"));
  try {
    const made = makeShapeFolder(join(work, "shapes"));
    const registry = join(work, "models");
    const t = await train([
      "--data",
      made.root,
      ...TINY,
      "--on-bad-image",
      "skip",
      "--name",
      "shapes",
      "--out",
      join(work, "run"),
      "--cache",
      join(work, "cache.bin"),
      "--publish",
      registry,
    ]);
    assert.equal(t.code, 0, t.err);
    assert.match(t.err, /image folder, 3 classes, 25 images listed/);
    assert.match(t.err, /unreadable files: 1 \(skipped\)/);
    assert.match(t.err, /skipped .*broken\.png: PNG/);
    const active = await resolveActive(registry);
    const manifest = await readManifest(active.dir);
    assert.deepEqual(manifest.labels, SHAPE_CLASSES);
    const roles = manifest.files.map((f) => f.role);
    for (const role of ["samples", "held-out", "latent-map"]) assert.ok(roles.includes(role), role);
    assert.equal(manifest.data.kind, "folder");

    const served = await serveBundle("native", active.dir);
    try {
      const p = await classify(served.app, readFileSync(join(made.root, made.images[0].path)));
      assert.ok(SHAPE_CLASSES.includes(p.label), `label ${p.label}`);
      assert.equal(p.probabilities.length, 3);
      const models = await (await served.app.request("/v1/models")).json();
      assert.deepEqual(models.active.labels, SHAPE_CLASSES);
      const samples = await (await served.app.request("/v1/models/active/samples")).json();
      assert.deepEqual(
        [...new Set(samples.samples.map((s: { name: string }) => s.name))],
        SHAPE_CLASSES,
      );
      const png = await served.app.request(samples.samples[0].url);
      assert.equal(png.headers.get("content-type"), "image/png");
      const sampled = await classify(served.app, new Uint8Array(await png.arrayBuffer()));
      assert.ok(SHAPE_CLASSES.includes(sampled.label));
      assert.equal((await served.app.request("/v1/models/active/samples/999")).status, 404);
    } finally {
      await served.slot.close();
    }
    await demoShows(active.dir, SHAPE_CLASSES);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

Deno.test("a CSV listing of the same images trains and serves the same class names", async () => {
  const work = mkdtempSync(join(tmpdir(), "own-data-csv-"));
  try {
    const made = makeShapeFolder(join(work, "shapes"));
    rmSync(join(made.root, made.corrupt)); // the CSV names only good files
    const csv = writeCsv(made);
    const t = await train(["--data", csv, ...TINY, "--out", join(work, "run"), "--cache", "none"]);
    assert.equal(t.code, 0, t.err);
    assert.match(t.err, /CSV listing, 3 classes, 24 images listed/);
    const dir = join(work, "run", "bundle");
    const served = await serveBundle("native", dir);
    try {
      const p = await classify(served.app, readFileSync(join(made.root, made.images[5].path)));
      assert.ok(SHAPE_CLASSES.includes(p.label));
      const models = await (await served.app.request("/v1/models")).json();
      assert.deepEqual(models.active.labels, SHAPE_CLASSES);
    } finally {
      await served.slot.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/** The demo page on a real server for `dir`: its legend, bars and samples use the bundle's names. */
async function demoShows(dir: string, names: string[]): Promise<void> {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);
  const pw = await import("playwright-core");
  const server = await startServer(["--bundle", dir, "--backend", "native"], {
    startTimeoutMs: 60_000,
  });
  const browser = await pw.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(30_000);
    await page.goto(server.url + "/");
    await page.waitForSelector("body[data-ready=true]");
    assert.deepEqual(await page.locator("#bars li .name").allTextContents(), names);
    const legend = await page.locator("#legend li:not(.key)").allTextContents();
    assert.deepEqual(legend.map((s) => s.trim()), names);
    const shown = await page.locator("#samples button span").allTextContents();
    assert.deepEqual([...new Set(shown)], names);
    // Clicking a sample classifies the bundle's own image.
    await page.locator("#samples button").first().click();
    const label = page.locator("#pred-label[data-state=done]");
    await label.waitFor();
    assert.ok(names.includes((await label.textContent()) ?? ""));
  } finally {
    await browser.close();
    await server.stop();
  }
}
