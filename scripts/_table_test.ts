import assert from "node:assert/strict";
import { markdownTable } from "./_table.ts";

Deno.test("markdownTable() pads every column to its widest cell", () => {
  assert.equal(
    markdownTable(["a", "long head"], [["12345", "x"], ["1", ""]]),
    [
      "| a     | long head |",
      "|-------|-----------|",
      "| 12345 | x         |",
      "| 1     |           |",
    ].join("\n"),
  );
});
