// Runs the Node-side tests (trainer/**/*_test.ts) with node's test runner. Node 20 does not
// expand globs for --test, so the files are listed here.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

function find(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? find(join(dir, e.name))
      : e.name.endsWith("_test.ts")
      ? [join(dir, e.name)]
      : []
  );
}

const files = find("trainer").sort();
const r = spawnSync(process.execPath, [
  "--import",
  "tsx",
  "--test",
  "--test-concurrency=1",
  ...files,
], { stdio: "inherit" });
process.exit(r.status ?? 1);
