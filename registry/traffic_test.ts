import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activationStack, type HistoryEntry } from "./history.ts";
import { parseCanary, parseShadow, readTrafficRecords, TrafficRecordError } from "./traffic.ts";

Deno.test("parseCanary() reads a record and names the bad field of a broken one", () => {
  const ok = parseCanary('{"version":"v2","percent":20,"state":"active","time":"t"}', "CANARY");
  assert.deepEqual(ok, { version: "v2", percent: 20, state: "active", time: "t" });
  const cases: [string, RegExp][] = [
    ["not json", /CANARY is not JSON/],
    ["[]", /one JSON object/],
    ['{"version":"../x","percent":1,"state":"active","time":"t"}', /"version" must be/],
    ['{"version":"v","percent":0,"state":"active","time":"t"}', /percent must be in \(0, 100\]/],
    ['{"version":"v","percent":5,"state":"done","time":"t"}', /"state" must be active/],
    ['{"version":"v","percent":5,"state":"active"}', /"time" must be a string/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => parseCanary(text, "CANARY"),
      (e) => e instanceof TrafficRecordError && re.test(e.message),
      text,
    );
  }
  assert.throws(
    () => parseShadow('{"version":"v","state":"on","time":"t"}', "SHADOW"),
    /active or stopped/,
  );
});

Deno.test("readTrafficRecords() is null without files and names the file it cannot parse", async () => {
  const dir = await mkdtemp(join(tmpdir(), "traffic-records-"));
  try {
    await mkdir(dir, { recursive: true });
    assert.deepEqual(await readTrafficRecords(dir), { canary: null, shadow: null });
    await writeFile(join(dir, "SHADOW"), "{");
    await assert.rejects(readTrafficRecords(dir), new RegExp(`${join(dir, "SHADOW")} is not JSON`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

Deno.test("activationStack() ignores canary, abort and shadow lines", () => {
  const e = (version: string, action: HistoryEntry["action"]): HistoryEntry => ({
    version,
    action,
    time: "t",
  });
  const h = [
    e("a", "publish"),
    e("b", "canary"),
    e("b", "abort"),
    e("c", "shadow"),
    e("b", "promote"),
  ];
  assert.deepEqual(activationStack(h), ["a", "b"]);
  assert.deepEqual(activationStack([...h, e("a", "rollback")]), ["a"]);
});
