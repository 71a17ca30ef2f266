/// <reference lib="dom" />
/// <reference lib="deno.ns" />
/**
 * The demo page in a real browser: the real server (serve/main.ts, tiny bundle) in a child
 * process on a free port, driven by playwright-core through Debian's Chromium
 * (/usr/bin/chromium; CHROMIUM_PATH overrides). Uploads a product-photo PNG made from a
 * Fashion-MNIST test image and checks that the page shows what the API says: the label
 * /v1/classify returns for the same bytes, ten probability bars, the 28x28 input and the
 * reconstruction; that moving a latent slider with the keyboard changes the decoded image;
 * that a bundled sample works; that the page makes no request to another host; and that it
 * fits a 390 px phone screen. Screenshots go to runs/ (git-ignored):
 * runs/demo-screenshot.png (1280 px) and runs/demo-screenshot-390.png (phone).
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { decodeBase64, encodeBase64 } from "../common/base64.ts";
import { encodePng } from "../common/image_codec.ts";
import { TINY_BUNDLE } from "../testkit/fixtures.ts";
import { renderPhoto } from "../testkit/photo.ts";
import { startServer } from "../testkit/server_process.ts";
import { imageAt, readTestImages } from "../testkit/test_images.ts";

const RUNS = new URL("../runs/", import.meta.url).pathname;
const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
/** Generous: the machine may be busy training; a healthy run takes a few seconds. */
const UI_TIMEOUT = 30_000;

/** Chromium via playwright-core, or a failure that says how to install what is missing. */
async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Cannot run the demo browser test: no Chromium at ${CHROMIUM}. ` +
        "Install it with `apt-get install -y chromium` (or set CHROMIUM_PATH).",
    );
  }
  let pw: typeof import("playwright-core");
  try {
    pw = await import("playwright-core");
  } catch (e) {
    throw new Error(
      "Cannot run the demo browser test: playwright-core is not installed " +
        `(npm install playwright-core): ${(e as Error).message}`,
    );
  }
  return await pw.chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/** Awaits a page condition; a timeout names what the page failed to show. */
async function shows<T>(what: string, wait: Promise<T>): Promise<T> {
  try {
    return await wait;
  } catch (e) {
    throw new Error(`The demo page did not show ${what} within ${UI_TIMEOUT} ms`, { cause: e });
  }
}

/** A Fashion-MNIST test image of `label` rendered as an RGB product photo, as PNG bytes. */
function productPhotoPng(label: number): Uint8Array {
  const t = readTestImages(200);
  if (!t) {
    throw new Error(
      "Cannot build the upload: Fashion-MNIST test files are missing " +
        "(apt-get install -y dataset-fashion-mnist, or set FASHION_MNIST_DIR)",
    );
  }
  const i = t.labels.indexOf(label);
  assert.ok(i >= 0, `no test image of class ${label} in the first ${t.count}`);
  return encodePng(renderPhoto(imageAt(t, i)));
}

Deno.test("the demo page classifies an uploaded PNG like /v1/classify, reconstructs it and decodes slider moves", async () => {
  const server = await startServer(["--bundle", TINY_BUNDLE, "--backend", "native"], {
    startTimeoutMs: 60_000,
  });
  const browser = await launchChromium().catch(async (e) => {
    await server.stop();
    throw e;
  });
  try {
    await mkdir(RUNS, { recursive: true });
    const origin = new URL(server.url).origin;
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(UI_TIMEOUT);
    const foreign: string[] = [];
    page.on("request", (r) => {
      const u = r.url();
      if (!u.startsWith(origin + "/") && !u.startsWith("data:") && !u.startsWith("blob:")) {
        foreign.push(u);
      }
    });
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(String(e)));

    await page.goto(server.url + "/");
    await page.waitForSelector("body[data-ready=true]", { timeout: UI_TIMEOUT });
    assert.equal(await page.locator("#model-name").textContent(), "fashion-vae");
    assert.match((await page.locator("#model-accuracy").textContent()) ?? "", /^68\.9%/);
    // The map is drawn from the active bundle's latent map and has a legend of 10 classes.
    assert.equal(await page.locator("#legend li:not(.key)").count(), 10);

    // Upload a real PNG through the labelled file input.
    const png = productPhotoPng(1); // a trouser
    const expected = await (await fetch(`${server.url}/v1/classify`, {
      method: "POST",
      headers: { "Content-Type": "image/png" },
      body: png as Uint8Array<ArrayBuffer>,
    })).json();
    const want = expected.predictions[0];
    await page.getByLabel("Or pick a file (PNG or JPEG)").setInputFiles({
      name: "trouser.png",
      mimeType: "image/png",
      buffer: Buffer.from(png),
    });
    const label = page.locator("#pred-label[data-state=done]");
    await shows("the predicted label", label.waitFor({ timeout: UI_TIMEOUT }));
    assert.equal(await label.textContent(), want.label);
    assert.equal(await page.locator("#bars li").count(), 10);
    assert.equal(await page.locator("#bars li.best .name").textContent(), want.label);
    const pctShown = await page.locator("#bars li .pct").allTextContents();
    assert.ok(pctShown.every((p) => /%$/.test(p)), `bars without a percentage: ${pctShown}`);

    // The 28x28 input and the reconstruction are shown as decoded PNGs.
    for (
      const [id, what] of [["#img-input", "the 28x28 input"], ["#img-recon", "the reconstruction"]]
    ) {
      const img = page.locator(id);
      await shows(what, img.waitFor({ state: "visible", timeout: UI_TIMEOUT }));
      await shows(
        what,
        page.waitForFunction(
          (sel: string) => {
            const i = document.querySelector(sel) as HTMLImageElement | null;
            return !!i && i.complete && i.naturalWidth === 28;
          },
          id,
          { timeout: UI_TIMEOUT },
        ),
      );
      assert.match((await img.getAttribute("src")) ?? "", /^data:image\/png;base64,/);
    }
    // The page's 28x28 input is the server's preprocessing of the same bytes.
    const pre = new Uint8Array(
      await (await fetch(`${server.url}/v1/preprocess`, {
        method: "POST",
        headers: { "Content-Type": "image/png" },
        body: png as Uint8Array<ArrayBuffer>,
      })).arrayBuffer(),
    );
    const shownInput = (await page.locator("#img-input").getAttribute("src"))!.split(",")[1];
    assert.deepEqual(decodeBase64(shownInput), pre);
    // The latent table shows mu as /v1/classify returned it.
    const mu0 = await page.locator("#latent-table tbody tr").first().locator("td").nth(1)
      .textContent();
    assert.equal(
      mu0?.replace("−", "-"),
      want.latent.mu[0].toFixed(2).replace(/^-0\.00$/, "0.00"),
    );
    await page.locator("#map-summary").filter({ hasText: "nearest test images" }).waitFor({
      timeout: UI_TIMEOUT,
    });

    // Keyboard: focus the first latent slider and move it; the decoded image must change.
    const decoded = page.locator("#img-decoded");
    await page.waitForFunction(
      () => ((document.getElementById("img-decoded") as HTMLImageElement).alt ?? "").length > 0,
      undefined,
      { timeout: UI_TIMEOUT },
    );
    // The decoded image names the z it was decoded from; wait until that is the sliders' z, so
    // no decode is still in flight when the image is read.
    const decodedSettled = () =>
      shows(
        "the image decoded from the sliders' values",
        page.waitForFunction(
          () => {
            const z = [...document.querySelectorAll<HTMLInputElement>("#sliders input")]
              .map((i) => (Number(i.value) < 0 ? "−" : "") + Math.abs(Number(i.value)).toFixed(1));
            return (document.getElementById("img-decoded") as HTMLImageElement).alt
              .includes(`(${z.join(", ")})`);
          },
          undefined,
          { timeout: UI_TIMEOUT },
        ),
      );
    await decodedSettled();
    const before = await decoded.getAttribute("src");
    const slider = page.getByLabel("Latent dimension 1 (z1)");
    await slider.focus();
    const v0 = Number(await slider.inputValue());
    for (let i = 0; i < 15; i++) await page.keyboard.press("ArrowRight");
    const v1 = Number(await slider.inputValue());
    assert.ok(Math.abs(v1 - v0 - 1.5) < 1e-6 || v1 === Number(await slider.getAttribute("max")));
    await shows(
      "a new decoded image after the slider moved",
      page.waitForFunction(
        (old: string | null) => {
          const i = document.getElementById("img-decoded") as HTMLImageElement;
          return i.src !== old && i.complete && i.naturalWidth === 28;
        },
        before,
        { timeout: UI_TIMEOUT },
      ),
    );
    await decodedSettled();
    const after = await decoded.getAttribute("src");
    assert.notEqual(after, before);
    // ...and it is what /v1/decode returns for the slider values.
    const z = await page.locator("#sliders input").evaluateAll((els) =>
      els.map((e) => Number((e as HTMLInputElement).value))
    );
    const direct = new Uint8Array(
      await (await fetch(`${server.url}/v1/decode`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ latent: z }),
      })).arrayBuffer(),
    );
    assert.deepEqual(decodeBase64(after!.split(",")[1]), direct);

    await page.screenshot({ path: RUNS + "demo-screenshot.png", fullPage: true });

    // A bundled sample, chosen with the keyboard.
    await page.getByRole("button", { name: "Sample: Sneaker" }).focus();
    await page.keyboard.press("Enter");
    await page.locator("#truth").filter({ hasText: "Sneaker" }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await label.textContent(), await sampleLabel(server.url, "7-sneaker.png"));

    // Dropping and pasting an image take the same path as the file input.
    for (
      const [event, name, cls] of [["drop", "dropped.png", 8], ["paste", "pasted.png", 5]] as const
    ) {
      const bytes = productPhotoPng(cls);
      const want = await classify(server.url, bytes);
      const dt = await page.evaluateHandle(([b64, fileName]) => {
        const d = new DataTransfer();
        // Runs in the page, which has no project modules: atob by hand.
        const data = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
        d.items.add(new File([data], fileName, { type: "image/png" }));
        return d;
      }, [encodeBase64(bytes), name] as const);
      if (event === "drop") {
        await page.dispatchEvent("#dropzone", "drop", { dataTransfer: dt });
      } else {
        await page.evaluate(
          (d) => document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: d })),
          dt,
        );
      }
      const status = page.locator("#status").filter({
        hasText: new RegExp(`^${event === "drop" ? "dropped" : "pasted"}`),
      });
      await shows(`the ${event}ped image's label`, status.waitFor({ timeout: UI_TIMEOUT }));
      assert.equal(await label.textContent(), want, `${event}ped image`);
    }

    // Every form control has an accessible name.
    const unnamed = await page.locator("input, button").evaluateAll((els) =>
      els.filter((e) => {
        const labelled = (e as HTMLInputElement).labels?.length ||
          e.getAttribute("aria-label") || (e.textContent ?? "").trim();
        return !labelled;
      }).map((e) => e.outerHTML)
    );
    assert.deepEqual(unnamed, []);

    // Phone width: nothing wider than the screen; the result is still there.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(overflow <= 390, `page is ${overflow} px wide on a 390 px screen`);
    assert.ok(await page.locator("#pred-label").isVisible());
    await page.screenshot({ path: RUNS + "demo-screenshot-390.png", fullPage: true });

    assert.deepEqual(foreign, [], "the page must not load anything from another host");
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
    assert.equal(await server.stop(), 0);
  }
});

/** The label /v1/classify gives a PNG. */
async function classify(url: string, png: Uint8Array): Promise<string> {
  const r = await fetch(`${url}/v1/classify`, {
    method: "POST",
    headers: { "Content-Type": "image/png" },
    body: png as Uint8Array<ArrayBuffer>,
  });
  return (await r.json()).predictions[0].label;
}

async function sampleLabel(url: string, file: string): Promise<string> {
  const bytes = await (await fetch(`${url}/demo/samples/${file}`)).arrayBuffer();
  return await classify(url, new Uint8Array(bytes));
}
