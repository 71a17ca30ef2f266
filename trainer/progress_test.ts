import assert from "node:assert/strict";
import { test } from "node:test";
import { formatDuration, ProgressBar } from "./progress.ts";

test("formatDuration() prints mm:ss, h:mm:ss, and --:-- when unknown", () => {
  assert.equal(formatDuration(65), "01:05");
  assert.equal(formatDuration(3725), "1:02:05");
  assert.equal(formatDuration(NaN), "--:--");
});

test("the progress bar shows label, percent, fields, rate and ETA; off a TTY it prints per 10%", () => {
  const lines: string[] = [];
  const out = {
    isTTY: false,
    write: (s: string) => (lines.push(s), true),
  } as unknown as NodeJS.WriteStream;
  const bar = new ProgressBar(out, 10);
  for (let done = 1; done <= 100; done++) {
    bar.update({
      label: "epoch 1/2",
      done,
      total: 100,
      fields: { loss: "1.0" },
      rate: 500,
      unit: "img",
    });
  }
  assert.equal(lines.length, 11, "one line per decile (0% ... 100%), not per step");
  assert.match(
    lines[10],
    /^epoch 1\/2 █{10} 100% 100\/100 {2}loss 1\.0 {2}500 img\/s {2}ETA 00:00\n$/,
  );
  bar.finish("epoch 1/2 done");
  bar.update({ label: "epoch 2/2", done: 1, total: 100, fields: {} });
  assert.equal(lines.at(-2), "epoch 1/2 done\n");
  assert.match(lines.at(-1)!, /^epoch 2\/2 ░{10} {3}1% 1\/100/, "a new epoch starts a new bar");
});
