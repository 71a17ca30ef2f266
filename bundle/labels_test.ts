import assert from "node:assert/strict";
import { labelNamesProblem } from "./labels.ts";
import { ManifestError, validateManifest } from "./manifest.ts";

Deno.test("labelNamesProblem() keeps names as given but refuses empty and NFC-equal ones", () => {
  assert.equal(labelNamesProblem(["T-shirt/top", "ring ö", "日本"]), null);
  assert.match(labelNamesProblem(["a"]) ?? "", /2 to 1000 class names, got 1/);
  assert.match(labelNamesProblem(["a", " "]) ?? "", /class name 1 is empty/);
  assert.match(labelNamesProblem(["caf\u00e9", "cafe\u0301"]) ?? "", /same after Unicode/);
  assert.match(
    labelNamesProblem(Array.from({ length: 1001 }, (_, i) => `c${i}`)) ?? "",
    /got 1001/,
  );
});

Deno.test("validateManifest() names the labels field for duplicate class names", async () => {
  const dir = new URL("../tests/testdata/tiny-bundle/", import.meta.url);
  const m = JSON.parse(await Deno.readTextFile(new URL("manifest.json", dir)));
  m.labels[3] = m.labels[2];
  assert.throws(
    () => validateManifest(m),
    (e: Error) => e instanceof ManifestError && e.field === "labels" && /2 and 3/.test(e.message),
  );
});
