/// <reference lib="dom" />
/// <reference lib="deno.ns" />
/**
 * The demo page's "similar items" card in a real browser (Debian's Chromium through
 * playwright-core, as tests/demo_browser_test.ts): the real server with an empty gallery and
 * --gallery-seed 300 fills it with test images at start; uploading one of those images shows
 * the ten nearest items, the image itself first, each with its thumbnail from the server.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeGreyPng } from "../common/image_codec.ts";
import { SERVE_PERMISSIONS, startServer } from "../testkit/server_process.ts";
import { resolveDataDir } from "../common/fashion_mnist.ts";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";
import { imageAt, readTestImages } from "../testkit/test_images.ts";

const DATA_DIR = resolveDataDir();

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

Deno.test("the demo page shows the gallery's nearest items for an uploaded image", async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install -y chromium)`);
  const tmp = await mkdtemp(join(tmpdir(), "demo-gallery-"));
  const server = await startServer(
    [
      "--bundle",
      TINY_BUNDLE,
      "--backend",
      "native",
      "--gallery",
      join(tmp, "gallery.sqlite"),
      "--gallery-seed",
      "300",
      "--data-dir",
      DATA_DIR,
    ],
    { permissions: [...SERVE_PERMISSIONS, "--allow-write"], startTimeoutMs: 60_000 },
  );
  const pw = await import("playwright-core");
  const browser = await pw.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
  try {
    for (let i = 0; i < 300; i++) {
      const g = await (await fetch(`${server.url}/v1/gallery`)).json();
      if (g.items === 300) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(30_000);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(server.url + "/");
    await page.waitForSelector("body[data-ready=true]");
    const t = readTestImages(300)!;
    await page.getByLabel("Or pick a file (PNG or JPEG)").setInputFiles({
      name: "item.png",
      mimeType: "image/png",
      buffer: Buffer.from(encodeGreyPng(imageAt(t, 42), 28, 28)),
    });
    await page.locator("#similar li").nth(9).waitFor();
    assert.equal(await page.locator("#similar li").count(), 10);
    assert.equal(await page.locator("#similar li").first().getAttribute("data-id"), "test-42");
    assert.match((await page.locator("#similar li span").first().textContent()) ?? "", /· 0\.00/);
    assert.match((await page.locator("#similar-note").textContent()) ?? "", /nearest of 300/);
    await page.waitForFunction(() => {
      const img = document.querySelector("#similar li img") as HTMLImageElement | null;
      return !!img && img.complete && img.naturalWidth === 28;
    });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.stop();
    await rm(tmp, { recursive: true, force: true });
  }
});
