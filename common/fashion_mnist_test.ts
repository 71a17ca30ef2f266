import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import {
  DATA_DIR_ENV,
  DataError,
  DEFAULT_DATA_DIR,
  encodeIdx,
  IDX_MAGIC,
  readIdx,
  resolveDataDir,
} from "./fashion_mnist.ts";

/** Writes `files` (name -> bytes, gzipped here) to a temporary directory and runs `fn` in it. */
function withFiles(files: Record<string, Uint8Array>, fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "idx-"));
  try {
    for (const [name, bytes] of Object.entries(files)) {
      writeFileSync(join(dir, name), gzipSync(bytes));
    }
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const images = Uint8Array.from({ length: 3 * 784 }, (_, i) => i % 251);

Deno.test("readIdx() reads back what encodeIdx() wrote: dims, body and the whole raw file", () => {
  const file = encodeIdx("images", images, 3);
  withFiles({ "x.gz": file, "y.gz": encodeIdx("labels", Uint8Array.of(7, 0, 9), 3) }, (dir) => {
    const im = readIdx(join(dir, "x.gz"), IDX_MAGIC.images, 3);
    assert.deepEqual(im.dims, [3, 28, 28]);
    assert.deepEqual(im.body, images);
    assert.deepEqual(im.raw, file);
    assert.equal(Object.getPrototypeOf(im.body), Uint8Array.prototype, "a plain Uint8Array");
    const lb = readIdx(join(dir, "y.gz"), IDX_MAGIC.labels);
    assert.deepEqual([...lb.body], [7, 0, 9]);
  });
});

Deno.test("readIdx() names the file and the fault: missing, wrong magic, count, size, truncation", () => {
  const good = encodeIdx("images", images, 3);
  const wrongSize = good.slice();
  new DataView(wrongSize.buffer).setUint32(8, 32);
  withFiles({
    "good.gz": good,
    "short.gz": good.subarray(0, good.length - 1),
    "size.gz": wrongSize,
    "tiny.gz": Uint8Array.of(0, 0, 8),
  }, (dir) => {
    const cases: [string, number, number | undefined, RegExp][] = [
      ["absent.gz", IDX_MAGIC.images, undefined, /absent\.gz does not exist/],
      [
        "good.gz",
        IDX_MAGIC.labels,
        undefined,
        /good\.gz: IDX magic number is 0x00000803, expected 0x00000801/,
      ],
      ["good.gz", IDX_MAGIC.images, 10, /good\.gz: holds 3 items, expected 10/],
      ["size.gz", IDX_MAGIC.images, undefined, /size\.gz: images are 32x28, expected 28x28/],
      [
        "short.gz",
        IDX_MAGIC.images,
        undefined,
        /short\.gz: body has 2351 bytes, the header promises 2352/,
      ],
      ["tiny.gz", IDX_MAGIC.images, undefined, /tiny\.gz: 3 bytes is too short for an IDX header/],
    ];
    for (const [name, magic, count, pattern] of cases) {
      assert.throws(() => readIdx(join(dir, name), magic, count), (e) => {
        assert.ok(e instanceof DataError, `${name}: ${e}`);
        assert.match(e.message, pattern);
        assert.match(
          e.message,
          /apt-get install -y dataset-fashion-mnist/,
          "says how to get the data",
        );
        return true;
      });
    }
  });
});

Deno.test("readIdx() reports a file that is not gzip as corrupt", () => {
  const dir = mkdtempSync(join(tmpdir(), "idx-"));
  try {
    writeFileSync(join(dir, "plain"), encodeIdx("labels", Uint8Array.of(1), 1));
    assert.throws(
      () => readIdx(join(dir, "plain"), IDX_MAGIC.labels),
      /plain: it is not a valid gzip file/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

Deno.test("resolveDataDir(): the flag, else the environment variable, else the default", () => {
  const saved = Deno.env.get(DATA_DIR_ENV);
  try {
    Deno.env.delete(DATA_DIR_ENV);
    assert.equal(resolveDataDir(), DEFAULT_DATA_DIR);
    Deno.env.set(DATA_DIR_ENV, "/from/env");
    assert.equal(resolveDataDir(), "/from/env");
    assert.equal(resolveDataDir("/from/flag"), "/from/flag");
  } finally {
    if (saved === undefined) Deno.env.delete(DATA_DIR_ENV);
    else Deno.env.set(DATA_DIR_ENV, saved);
  }
});
