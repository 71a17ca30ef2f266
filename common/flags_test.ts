import assert from "node:assert/strict";
import { choiceFlag, FlagError, formatHelp, parseCommandFlags, parseFlags } from "./flags.ts";

const specs = {
  port: { type: "int", default: 8000, help: "port", env: "PORT" },
  backend: { type: "string", default: "auto", choices: ["auto", "wasm"], help: "backend" },
  verbose: { type: "boolean", default: false, help: "talk" },
  lr: { type: "number", help: "rate" },
} as const;

Deno.test("parseFlags() fills defaults, env and both --k v and --k=v forms", () => {
  const { flags, positional } = parseFlags(
    ["--backend=wasm", "--lr", "0.5", "--verbose", "file"],
    specs,
    { PORT: "9001" },
  );
  assert.deepEqual({ ...flags }, {
    port: 9001,
    backend: "wasm",
    verbose: true,
    lr: 0.5,
    help: false,
  });
  assert.deepEqual(positional, ["file"]);
});

Deno.test("parseFlags() lets a flag win over the environment and supports --no-x", () => {
  const { flags } = parseFlags(["--port", "1", "--no-verbose"], specs, { PORT: "9001" });
  assert.equal(flags.port, 1);
  assert.equal(flags.verbose, false);
});

Deno.test("parseFlags() rejects unknown flags, bad numbers and bad choices with the reason", () => {
  assert.throws(
    () => parseFlags(["--prot", "1"], specs),
    (e) => e instanceof FlagError && /Unknown flag --prot/.test(e.message),
  );
  assert.throws(() => parseFlags(["--port", "x"], specs), /--port takes an integer, got "x"/);
  assert.throws(() => parseFlags(["--port", "1.5"], specs), /--port takes an integer/);
  assert.throws(
    () => parseFlags(["--backend", "gpu"], specs),
    /must be one of auto, wasm; got "gpu"/,
  );
  assert.throws(() => parseFlags(["--lr"], specs), /--lr needs a value/);
  assert.throws(
    () => parseFlags([], specs, { PORT: "eighty" }),
    /--port takes an integer, got "eighty"/,
  );
});

Deno.test("formatHelp() lists every flag with its default and env", () => {
  const h = formatHelp("usage", specs);
  assert.match(h, /--port .*\(default 8000\) \[env PORT\]/);
  assert.match(h, /auto\|wasm/);
  assert.equal(parseFlags(["--help"], specs).flags.help, true);
});

Deno.test("parseCommandFlags() returns the flags, null after printing --help, and rejects positionals", () => {
  assert.equal(parseCommandFlags(["--port", "1"], specs, "usage", {})?.port, 1);
  assert.equal(parseCommandFlags([], specs, "usage", { PORT: "9001" })?.port, 9001);
  const printed: unknown[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => printed.push(...a);
  try {
    assert.equal(parseCommandFlags(["--help", "extra"], specs, "usage line"), null);
  } finally {
    console.log = log;
  }
  assert.deepEqual(printed, [formatHelp("usage line", specs)]);
  assert.throws(
    () => parseCommandFlags(["extra", "--port", "1"], specs, "usage"),
    (e) => e instanceof FlagError && /Unexpected argument\(s\): extra/.test(e.message),
  );
});

Deno.test('parseFlags() ignores the leading "--" that deno task passes through', () => {
  const { flags, positional } = parseFlags(["--", "--port", "9"], specs);
  assert.equal(flags.port, 9);
  assert.deepEqual(positional, []);
  assert.deepEqual(parseFlags(["--port", "9", "--", "--x"], specs).positional, ["--x"]);
});

Deno.test("choiceFlag() defaults to the first choice and rejects a value outside the choices", () => {
  const arch = { arch: choiceFlag(["reference", "tiny"], "architecture") };
  assert.equal(parseFlags([], arch).flags.arch, "reference");
  assert.equal(parseFlags(["--arch", "tiny"], arch).flags.arch, "tiny");
  assert.throws(() => parseFlags(["--arch", "big"], arch), /one of reference, tiny; got "big"/);
  assert.match(
    formatHelp("usage", arch),
    /--arch +reference\|tiny architecture \(default "reference"\)/,
  );
});
