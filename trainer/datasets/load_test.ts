/**
 * Image datasets end to end up to the splits: folder and CSV/JSONL sources, the service's
 * preprocessing, the decode cache, the held-out record, and every bad-data case named.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { decodeImage, encodePng } from "../../common/image_codec.ts";
import { PIXELS } from "../../common/labels.ts";
import { preprocess, toBytes } from "../../common/preprocess.ts";
import { HELD_OUT_FILE, heldOutRecord } from "../../bundle/held_out.ts";
import { DatasetError } from "./errors.ts";
import { readHeldOut } from "./mod.ts";
import { detectKind, listImages } from "./listing.ts";
import { type ImageDatasetOptions, loadImageDataset } from "./load.ts";
import { makeShapeFolder, SHAPE_CLASSES, shapeImage, writeCsv } from "./testdata/make_dataset.ts";

const work = mkdtempSync(join(tmpdir(), "datasets-test-"));
after(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(work, `d${n++}`);

const OPTS: ImageDatasetOptions = {
  onBadImage: "skip",
  minPerClass: 5,
  testFraction: 0.2,
  valFraction: 0.2,
  seed: 1,
  cacheFile: null,
  threads: 1,
};

async function rejects(p: Promise<unknown>, ...parts: (string | RegExp)[]): Promise<string> {
  let msg = "";
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof DatasetError, `a DatasetError, got ${e.name}: ${e.message}`);
    msg = e.message;
    return true;
  });
  for (const p of parts) {
    assert.ok(typeof p === "string" ? msg.includes(p) : p.test(msg), `"${p}" in: ${msg}`);
  }
  return msg;
}

test("a class folder loads with its names, every image through the service's preprocessing", async () => {
  const made = makeShapeFolder(fresh());
  const d = await loadImageDataset(made.root, OPTS);
  assert.equal(d.kind, "folder");
  assert.deepEqual(d.labels, SHAPE_CLASSES);
  assert.equal(d.train.count + (d.val?.count ?? 0) + d.test.count, made.images.length);
  assert.equal(d.report.unreadable.length, 1);
  assert.match(d.report.unreadable[0].where, /broken\.png$/);
  assert.deepEqual(Object.keys(d.report.modes).sort(), ["RGB", "RGBA", "grey"]);
  assert.ok(d.report.formats.jpeg > 0 && d.report.formats.png > 0);
  assert.match(d.summary, /ring ö\s+\d+\s+\d+\s+\d+/);
  assert.match(d.summary, /unreadable files: 1 \(skipped\)/);
  // Each class is held out in test (stratified) and the three splits share no content.
  assert.deepEqual(d.report.perClass.map((c) => c.test > 0), [true, true, true]);
  const all = [...d.heldOut.test, ...d.heldOut.val];
  assert.equal(new Set(all).size, all.length);
  // The pixels are exactly what the service computes for the same file.
  const first = made.images.find((im) => im.path.endsWith(".jpg"))!;
  const want = toBytes(preprocess(decodeImage(readFileSync(join(made.root, first.path))), "auto"));
  const rows = [d.train, d.val!, d.test].flatMap((s) =>
    Array.from({ length: s.count }, (_, i) => s.images.subarray(i * PIXELS, (i + 1) * PIXELS))
  );
  assert.ok(rows.some((r) => r.every((v, i) => v === want[i])), "the JPEG's preprocessed pixels");
});

test("a CSV and a JSONL listing give the same classes and images as the folder", async () => {
  const made = makeShapeFolder(fresh());
  const csv = writeCsv(made);
  const jsonl = join(made.root, "list.jsonl");
  writeFileSync(jsonl, made.images.map((im) => JSON.stringify(im)).join("\n") + "\n");
  assert.equal(detectKind(csv), "csv");
  assert.equal(detectKind(jsonl), "jsonl");
  const a = await loadImageDataset(csv, OPTS);
  const b = await loadImageDataset(jsonl, OPTS);
  const c = await loadImageDataset(made.root, OPTS);
  assert.deepEqual(a.labels, SHAPE_CLASSES);
  assert.deepEqual(b.labels, SHAPE_CLASSES);
  // Splits follow content, not listing order or source kind: the same images are held out.
  assert.deepEqual(a.heldOut, c.heldOut);
  assert.deepEqual(b.heldOut, c.heldOut);
});

test("--on-bad-image fail names the unreadable file and why", async () => {
  const made = makeShapeFolder(fresh());
  writeFileSync(join(made.root, "bar", "notes.png"), "this is not an image");
  const msg = await rejects(
    loadImageDataset(made.root, { ...OPTS, onBadImage: "fail" }),
    "2 unreadable image file(s)",
    "broken.png",
    "notes.png: not a PNG or JPEG file",
  );
  assert.match(msg, /broken\.png: PNG/);
});

test("a class below --min-per-class is an error naming the class", async () => {
  const made = makeShapeFolder(fresh(), 6);
  rmSync(join(made.root, "ring ö", "0.png"));
  rmSync(join(made.root, "ring ö", "1.png"));
  await rejects(
    loadImageDataset(made.root, OPTS),
    'class "ring ö": 4 usable image(s)',
    "--min-per-class 5",
  );
});

test("duplicates across train and test are reported and kept out of evaluation", async () => {
  const root = fresh();
  for (const split of ["train", "test"]) {
    for (const cls of ["a", "b"]) {
      mkdirSync(join(root, split, cls), { recursive: true });
      for (let i = 0; i < 6; i++) {
        const k = split === "test" ? i + 100 : i;
        writeFileSync(
          join(root, split, cls, `${i}.png`),
          encodePng(shapeImage(cls === "a" ? "bar" : "ring ö", k)),
        );
      }
    }
  }
  // Two test images are copies of training images, one test image is there twice.
  writeFileSync(
    join(root, "test", "a", "copy.png"),
    readFileSync(join(root, "train", "a", "0.png")),
  );
  writeFileSync(
    join(root, "test", "b", "copy.png"),
    readFileSync(join(root, "train", "b", "1.png")),
  );
  writeFileSync(
    join(root, "test", "b", "again.png"),
    readFileSync(join(root, "test", "b", "2.png")),
  );
  const d = await loadImageDataset(root, { ...OPTS, valFraction: 0 });
  assert.equal(d.report.trainTestOverlap, 2);
  assert.equal(d.report.duplicates, 3);
  assert.equal(d.test.count, 12, "6 + 6 distinct test images, no copies");
  assert.match(d.summary, /train\/test overlap: 2 test image\(s\) dropped/);
});

test("listing errors name the file, folder or line", async () => {
  await rejects(
    loadImageDataset(join(work, "missing"), OPTS),
    "missing: no such file or directory",
  );
  const made = makeShapeFolder(fresh());
  mkdirSync(join(made.root, "empty class"));
  await rejects(
    loadImageDataset(made.root, OPTS),
    "without any .png/.jpg/.jpeg image",
    "empty class",
  );
  const bad = join(made.root, "bad.csv");
  writeFileSync(bad, "path,label\nbar/0.png,bar\nbar/nope.png,bar\n");
  await rejects(loadImageDataset(bad, OPTS), "bad.csv: line 3: bar/nope.png does not exist");
  writeFileSync(bad, "path,class\nbar/0.png,bar\n");
  await rejects(loadImageDataset(bad, OPTS), 'bad.csv: line 1: the header has no "label" column');
  writeFileSync(bad, "path,label\nbar/0.png,\n");
  await rejects(loadImageDataset(bad, OPTS), 'bad.csv: line 2: "label" is missing or empty');
  const jl = join(made.root, "bad.jsonl");
  writeFileSync(jl, '{"path": "bar/0.png", "label": "bar"}\n{"path": \n');
  await rejects(loadImageDataset(jl, OPTS), "bad.jsonl: line 2: not JSON");
});

test("class names equal after Unicode normalisation are refused", () => {
  const root = fresh();
  for (const name of ["caf\u00e9", "cafe\u0301"]) {
    mkdirSync(join(root, name), { recursive: true });
    writeFileSync(join(root, name, "0.png"), encodePng(shapeImage("bar", 0)));
  }
  assert.throws(() => listImages(root), /same after Unicode normalisation/);
});

test("a held-out record holds out the same images again, whatever the seed", async () => {
  const made = makeShapeFolder(fresh());
  const first = await loadImageDataset(made.root, OPTS);
  const other = await loadImageDataset(made.root, { ...OPTS, seed: 99 });
  assert.notDeepEqual(other.heldOut.test, first.heldOut.test, "another seed draws other images");
  const again = await loadImageDataset(made.root, { ...OPTS, seed: 99, heldOut: first.heldOut });
  assert.deepEqual(again.heldOut.test.sort(), [...first.heldOut.test].sort());
  assert.deepEqual(again.heldOut.val.sort(), [...first.heldOut.val].sort());
});

test("the decode cache serves a second run and re-decodes an edited file", async () => {
  const made = makeShapeFolder(fresh());
  const cacheFile = join(work, `cache-${n}.bin`);
  const a = await loadImageDataset(made.root, { ...OPTS, cacheFile });
  assert.equal(a.report.fromCache, 0);
  const usable = made.images.length;
  assert.equal(a.report.decodedNow, usable);
  const b = await loadImageDataset(made.root, { ...OPTS, cacheFile });
  assert.equal(b.report.decodedNow, 0);
  assert.equal(b.report.fromCache, usable);
  assert.deepEqual(b.test.images, a.test.images);
  // A changed file is decoded again; a renamed one is found by content.
  const edited = join(made.root, made.images[0].path);
  writeFileSync(edited, encodePng(shapeImage("bar", 77)));
  utimesSync(edited, new Date(), new Date(Date.now() + 5000));
  const c = await loadImageDataset(made.root, { ...OPTS, cacheFile });
  assert.equal(c.report.decodedNow, 1);
  assert.equal(c.report.fromCache, usable - 1);
});

test("a damaged or foreign cache file is ignored, not trusted", async () => {
  const made = makeShapeFolder(fresh());
  const cacheFile = join(work, `cache-${n}.bin`);
  await loadImageDataset(made.root, { ...OPTS, cacheFile });
  const bytes = readFileSync(cacheFile);
  writeFileSync(cacheFile, bytes.subarray(0, bytes.length - 10));
  const a = await loadImageDataset(made.root, { ...OPTS, cacheFile });
  assert.equal(a.report.fromCache, 0, "a truncated cache is not read");
  writeFileSync(cacheFile, "LECACHE3 something else entirely");
  const b = await loadImageDataset(made.root, { ...OPTS, cacheFile });
  assert.equal(b.report.fromCache, 0);
  assert.equal(b.report.decodedNow, made.images.length);
});

test("readHeldOut() reads a bundle's held-out.json and names a bad one", () => {
  const dir = fresh();
  mkdirSync(dir);
  const h = "ab".repeat(32);
  writeFileSync(join(dir, HELD_OUT_FILE), JSON.stringify(heldOutRecord({ test: [h], val: [] })));
  assert.deepEqual(readHeldOut(dir).test, [h]);
  writeFileSync(join(dir, HELD_OUT_FILE), JSON.stringify({ format: "x", test: [], val: [] }));
  assert.throws(() => readHeldOut(dir), /held-out record .*held-out\.json: "format" is "x"/);
});
