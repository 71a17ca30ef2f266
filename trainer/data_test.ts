import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import {
  DataError,
  encodeIdx,
  FILES,
  loadFashionMnist,
  stratifiedIndices,
  stratifiedSubset,
  trainValSplit,
} from "./data.ts";

const data = loadFashionMnist();

test("loadFashionMnist() reads the real dataset with the official counts", () => {
  assert.equal(data.train.count, 60000);
  assert.equal(data.test.count, 10000);
  assert.equal(data.train.images.length, 60000 * 784);
  // Fashion-MNIST is balanced: 6,000 training images per class.
  const counts = new Array(10).fill(0);
  for (const l of data.train.labels) counts[l]++;
  assert.deepEqual(counts, new Array(10).fill(6000));
  assert.match(data.fingerprint[FILES.trainImages], /^[0-9a-f]{64}$/);
});

function fakeDir(mutate?: (files: Record<string, Uint8Array>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), "fmnist-"));
  const n = 20;
  const files: Record<string, Uint8Array> = {
    [FILES.trainImages]: gzipSync(encodeIdx("images", data.train.images.subarray(0, n * 784), n)),
    [FILES.trainLabels]: gzipSync(encodeIdx("labels", data.train.labels.subarray(0, n), n)),
    [FILES.testImages]: gzipSync(encodeIdx("images", data.test.images.subarray(0, n * 784), n)),
    [FILES.testLabels]: gzipSync(encodeIdx("labels", data.test.labels.subarray(0, n), n)),
  };
  mutate?.(files);
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
  return dir;
}

function expectDataError(dir: string, pattern: RegExp) {
  try {
    assert.throws(() => loadFashionMnist(dir, { strictCounts: false }), (e: unknown) => {
      assert.ok(e instanceof DataError, `expected DataError, got ${e}`);
      assert.match((e as Error).message, pattern);
      // Every data error says how to get the data.
      assert.match((e as Error).message, /apt-get install -y dataset-fashion-mnist/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a small well-formed dataset loads when counts are not strict", () => {
  const dir = fakeDir();
  try {
    const d = loadFashionMnist(dir, { strictCounts: false });
    assert.equal(d.train.count, 20);
    assert.deepEqual(d.test.labels, data.test.labels.subarray(0, 20));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("strict counts reject a dataset that is not the official size", () => {
  const dir = fakeDir();
  try {
    assert.throws(() => loadFashionMnist(dir), /holds 20 items, expected 60000/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a missing directory names the file and how to get the data", () => {
  expectDataError("/nonexistent/fashion", /train-images-idx3-ubyte\.gz does not exist/);
});

test("a missing file is named", () => {
  expectDataError(
    fakeDir((f) => delete f[FILES.testLabels]),
    /t10k-labels-idx1-ubyte\.gz does not exist/,
  );
});

test("a truncated gzip file is reported as corrupt", () => {
  expectDataError(
    fakeDir((f) => (f[FILES.trainImages] = f[FILES.trainImages].subarray(0, 100))),
    /train-images.*not a valid gzip file/,
  );
});

test("a truncated IDX body is reported with byte counts", () => {
  expectDataError(
    fakeDir((
      f,
    ) => (f[FILES.testImages] = gzipSync(
      encodeIdx("images", data.test.images.subarray(0, 20 * 784), 20).subarray(0, 5000),
    ))),
    /t10k-images.*body has 4984 bytes, the header promises 15680/,
  );
});

test("a wrong magic number is reported (labels file in place of images)", () => {
  expectDataError(
    fakeDir((f) => (f[FILES.trainImages] = f[FILES.trainLabels])),
    /train-images.*magic number is 0x00000801, expected 0x00000803/,
  );
});

test("labels and images of different counts are rejected", () => {
  expectDataError(
    fakeDir((
      f,
    ) => (f[FILES.trainLabels] = gzipSync(
      encodeIdx("labels", data.train.labels.subarray(0, 19), 19),
    ))),
    /train-labels.*holds 19 items, expected 20/,
  );
});

test("an out-of-range label is rejected", () => {
  const bad = Uint8Array.from(data.train.labels.subarray(0, 20));
  bad[3] = 12;
  expectDataError(
    fakeDir((f) => (f[FILES.trainLabels] = gzipSync(encodeIdx("labels", bad, 20)))),
    /label 12 at index 3/,
  );
});

test("stratifiedIndices() gives n/10 per class, seeded and repeatable", () => {
  for (const n of [100, 1000, 60000]) {
    const idx = stratifiedIndices(data.train.labels, n, 3);
    assert.equal(idx.length, n);
    assert.equal(new Set(idx).size, n, "no duplicates");
    const counts = new Array(10).fill(0);
    for (const i of idx) counts[data.train.labels[i]]++;
    assert.deepEqual(counts, new Array(10).fill(n / 10));
  }
  assert.deepEqual(
    stratifiedIndices(data.train.labels, 100, 3),
    stratifiedIndices(data.train.labels, 100, 3),
  );
  assert.notDeepEqual(
    stratifiedIndices(data.train.labels, 100, 3),
    stratifiedIndices(data.train.labels, 100, 4),
  );
});

test("stratifiedSubset() puts the remainder in the first classes", () => {
  const s = stratifiedSubset(data.train, 105, 1);
  const counts = new Array(10).fill(0);
  for (const l of s.labels) counts[l]++;
  assert.deepEqual(counts, [11, 11, 11, 11, 11, 10, 10, 10, 10, 10]);
});

test("trainValSplit() holds out a disjoint stratified validation set from train", () => {
  const { train, val } = trainValSplit(data.train, 5000, 1);
  assert.equal(train.count, 55000);
  assert.equal(val.count, 5000);
  const counts = new Array(10).fill(0);
  for (const l of val.labels) counts[l]++;
  assert.deepEqual(counts, new Array(10).fill(500));
  // Disjoint: no validation image appears in the remaining training set (hash rows to compare).
  const key = (s: typeof train, i: number) =>
    Buffer.from(s.images.subarray(i * 784, i * 784 + 784)).toString("base64");
  const trainKeys = new Set<string>();
  for (let i = 0; i < train.count; i++) trainKeys.add(key(train, i));
  let shared = 0;
  for (let i = 0; i < val.count; i++) if (trainKeys.has(key(val, i))) shared++;
  // Fashion-MNIST has a handful of exact duplicate images across rows; allow those, not a leak.
  assert.ok(shared < 20, `${shared} validation images also in train`);
});
