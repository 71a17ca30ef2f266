import assert from "node:assert/strict";
import { readLines } from "./lines.ts";

Deno.test("readLines() splits across chunk boundaries, decodes UTF-8 split mid-character, keeps a last unterminated line", async () => {
  const bytes = new TextEncoder().encode("one\ntwo é\nthree");
  const cut = [0, 2, 7, 9, bytes.length]; // 9 falls inside the two bytes of "é"
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 1; i < cut.length; i++) c.enqueue(bytes.slice(cut[i - 1], cut[i]));
      c.close();
    },
  });
  const lines: string[] = [];
  await readLines(stream, (l) => lines.push(l));
  assert.deepEqual(lines, ["one", "two é", "three"]);
});
