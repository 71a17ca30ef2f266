/**
 * The publish CLI's traffic commands against the committed fixtures: a canary staged from a
 * bundle directory (verified, not activated), promote through the regression gate (b scores
 * 2.8 points below a on a's 1000 test images: refused, then forced; a back over b loses a
 * class, and passes with that limit loosened),
 * abort with a reason, shadow on and off, and the usage errors. Runs under Node (npm run test:trainer) and Deno (node:test).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { resolveActive } from "../registry/registry.ts";
import { readHistory } from "../registry/history.ts";
import { readTrafficRecords } from "../registry/traffic.ts";
import { publishMain, reportPublishError } from "./publish.ts";

const fixture = (name: string) =>
  fileURLToPath(new URL(`../tests/testdata/${name}`, import.meta.url));
const version = async (dir: string) =>
  JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")).version;

async function run(args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const log = (s: string) => lines.push(s);
  const code = await publishMain(args, log).catch((e) => reportPublishError(e, log));
  return { code, lines };
}

test("canary from a bundle dir, promote, abort with a reason, shadow on and off", async () => {
  const root = await mkdtemp(join(tmpdir(), "publish-traffic-"));
  try {
    const [a, b, c] = ["tiny-bundle", "tiny-bundle-b", "tiny-bundle-c"].map(fixture);
    const [va, vb, vc] = await Promise.all([a, b, c].map(version));
    const reg = ["--registry", root, "--no-translation"];
    assert.equal((await run([a, ...reg])).code, 0);
    const canary = await run(["canary", b, "--percent", "20", ...reg]);
    assert.equal(canary.code, 0, canary.lines.join("\n"));
    assert.match(canary.lines.join("\n"), new RegExp(`staged .*${vb}.*not active`));
    assert.equal((await resolveActive(root)).version, va, "staging does not activate");
    let rec = await readTrafficRecords(join(root, "fashion-vae"));
    assert.deepEqual([rec.canary?.version, rec.canary?.percent, rec.canary?.state], [
      vb,
      20,
      "active",
    ]);

    // The canary was staged without the gate: promote gates it as a publish would.
    const refused = await run(["promote", ...reg]);
    assert.equal(refused.code, 1);
    assert.match(
      refused.lines.at(-1)!,
      new RegExp(`gate refused ${vb} against ${va} on 1000 images .*CURRENT is still ${va}`),
    );
    assert.match(refused.lines.at(-1)!, /overall accuracy 68\.9% -> 66\.1% \(-2\.8 points/);
    assert.equal((await resolveActive(root)).version, va);
    rec = await readTrafficRecords(join(root, "fashion-vae"));
    assert.equal(rec.canary?.state, "active", "a refused promotion leaves the canary running");

    assert.equal((await run(["promote", "--force", ...reg])).code, 0);
    assert.equal((await resolveActive(root)).version, vb);
    rec = await readTrafficRecords(join(root, "fashion-vae"));
    assert.equal(rec.canary?.state, "promoted");
    const promoted = (await readHistory(join(root, "fashion-vae"))).findLast((e) =>
      e.action === "promote"
    );
    assert.equal(promoted?.version, vb);
    assert.match(promoted?.forced?.join("\n") ?? "", /overall accuracy 68\.9% -> 66\.1%/);

    // a over b gains 2.8 points overall but loses "Coat" (68.7% -> 0.0%): the gate's limits
    // apply to promote as to publish.
    assert.equal((await run(["canary", va, "--percent", "10", ...reg])).code, 0);
    const coat = await run(["promote", ...reg]);
    assert.equal(coat.code, 1);
    assert.match(coat.lines.at(-1)!, /class "Coat" 68\.7% -> 0\.0% \(-68\.7 points, limit 3\)/);
    assert.doesNotMatch(coat.lines.at(-1)!, /overall accuracy/);
    const passed = await run(["promote", "--max-class-drop", "70", ...reg]);
    assert.equal(passed.code, 0, passed.lines.join("\n"));
    assert.match(passed.lines.join("\n"), new RegExp(`gate ${vb} -> ${va} .*68\\.9%.*: passed`));
    assert.equal((await resolveActive(root)).version, va);
    assert.equal((await readHistory(join(root, "fashion-vae"))).at(-1)?.forced, undefined);

    assert.equal((await run(["canary", c, "--percent", "5", ...reg])).code, 0);
    assert.equal((await run(["abort", "--reason", "p99 too high", ...reg])).code, 0);
    rec = await readTrafficRecords(join(root, "fashion-vae"));
    assert.deepEqual([rec.canary?.version, rec.canary?.state, rec.canary?.reason], [
      vc,
      "aborted",
      "p99 too high",
    ]);
    const again = await run(["abort", ...reg]);
    assert.equal(again.code, 1);
    assert.match(again.lines.join("\n"), /no canary is running .* was aborted/);

    assert.equal((await run(["shadow", vc, ...reg])).code, 0);
    assert.equal((await readTrafficRecords(join(root, "fashion-vae"))).shadow?.state, "active");
    assert.equal((await run(["shadow", "off", ...reg])).code, 0);
    assert.equal((await readTrafficRecords(join(root, "fashion-vae"))).shadow?.state, "stopped");
    assert.equal((await resolveActive(root)).version, va, "traffic commands leave CURRENT alone");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("traffic commands refuse bad usage with exit 2 or 1 and say why", async () => {
  const root = await mkdtemp(join(tmpdir(), "publish-traffic-"));
  try {
    const reg = ["--registry", root, "--no-translation"];
    const a = fixture("tiny-bundle");
    assert.equal((await run([a, ...reg])).code, 0);
    const noPct = await run(["canary", await version(a), ...reg]);
    assert.equal(noPct.code, 2);
    assert.match(noPct.lines.join("\n"), /needs --percent/);
    const bad = await run(["canary", "nope", "--percent", "150", ...reg]);
    assert.equal(bad.code, 1);
    assert.match(bad.lines.join("\n"), /percent must be in \(0, 100\], got 150/);
    const active = await run(["canary", await version(a), "--percent", "10", ...reg]);
    assert.equal(active.code, 1);
    assert.match(active.lines.join("\n"), /already the active version/);
    const missing = await run(["canary", "no-such-version", "--percent", "10", ...reg]);
    assert.match(missing.lines.join("\n"), /no-such-version.* holds no bundle/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
