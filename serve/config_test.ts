import assert from "node:assert/strict";
import { ConfigError, defaultConfig, helpText, parseConfig } from "./config.ts";
import { FLAG_SPECS } from "./config_flags.ts";

Deno.test("parseConfig() fills defaults: port 8000, registry models, auto backend, 4 MB bodies, batch 256", () => {
  const c = defaultConfig();
  assert.equal(c.port, 8000);
  assert.equal(c.registry, "models");
  assert.equal(c.backend, "auto");
  assert.equal(c.maxBodyBytes, 4 * 1024 * 1024);
  assert.equal(c.maxBatch, 256);
  assert.equal(c.maxPixels, 25_000_000);
  assert.equal(c.bundle, undefined);
});

Deno.test("parseConfig() reads flags and PORT from the environment; the flag wins", () => {
  assert.equal(parseConfig([], { PORT: "9001" }).config!.port, 9001);
  assert.equal(parseConfig(["--port", "9002"], { PORT: "9001" }).config!.port, 9002);
  const c = parseConfig(["--bundle=x", "--backend", "wasm", "--threads", "1", "--max-batch", "8"])
    .config!;
  assert.deepEqual([c.bundle, c.backend, c.threads, c.maxBatch], ["x", "wasm", 1, 8]);
});

Deno.test("parseConfig() takes every flag from its environment variable, as containers pass them", () => {
  const env: Record<string, string> = {};
  for (const [name, spec] of Object.entries(FLAG_SPECS)) {
    assert.ok("env" in spec && spec.env, `--${name} has an environment variable`);
  }
  Object.assign(env, {
    MODEL_REGISTRY: "s3://models/prod",
    MODEL_NAME: "fashion-vae",
    BACKEND: "wasm",
    POLL_MS: "750",
    CACHE_DIR: "/tmp/c",
    WATCH: "false",
    HOST: "127.0.0.1",
  });
  const c = parseConfig([], env).config!;
  assert.deepEqual(
    [c.registry, c.model, c.backend, c.pollMs, c.cacheDir, c.watch, c.host],
    ["s3://models/prod", "fashion-vae", "wasm", 750, "/tmp/c", false, "127.0.0.1"],
  );
  assert.throws(() => parseConfig([], { BACKEND: "gpu" }), /--backend must be one of/);
  assert.throws(
    () => parseConfig(["--registry", "s3://Not_A_Bucket/x"]),
    (e) => e instanceof ConfigError && /--registry: .*not a valid bucket name/.test(e.message),
  );
});

Deno.test("parseConfig() rejects unknown flags, stray arguments and bad values", () => {
  assert.throws(
    () => parseConfig(["--prot", "1"]),
    (e) => e instanceof ConfigError && /Unknown flag --prot/.test(e.message),
  );
  assert.throws(() => parseConfig(["serve"]), /Unexpected argument/);
  assert.throws(() => parseConfig(["--backend", "gpu"]), /must be one of auto, native, wasm/);
  assert.throws(() => parseConfig(["--port", "70000"]), /0\.\.65535/);
  assert.throws(() => parseConfig(["--max-batch", "0"]), /--max-batch must be >= 1/);
  assert.throws(() => parseConfig(["--bundle", "a", "--model", "b"]), /bypasses the registry/);
});

Deno.test("parseConfig() returns null for --help, and the help lists every flag", () => {
  assert.equal(parseConfig(["--help"]).config, null);
  for (
    const f of [
      "--port",
      "--registry",
      "--model",
      "--bundle",
      "--backend",
      "--threads",
      "--max-body-bytes",
      "--max-pixels",
      "--max-batch",
    ]
  ) {
    assert.ok(helpText().includes(f), f);
  }
});

Deno.test("parseConfig() --replicas: 1 by default, 0 means one per core, more than 1 implies --reuse-port", () => {
  assert.deepEqual([defaultConfig().replicas, defaultConfig().reusePort], [1, false]);
  const auto = parseConfig(["--replicas", "0"], {}, 4).config!;
  assert.deepEqual([auto.replicas, auto.reusePort], [4, true]);
  assert.equal(parseConfig(["--replicas", "0"], {}, 1).config!.reusePort, false);
  assert.throws(() => parseConfig(["--replicas", "-1"]), /--replicas must be >= 0/);
});

Deno.test("parseConfig() takes the admin token from a file or ADMIN_TOKEN, never from argv", () => {
  const token = "from-the-file-0123456789";
  const files: Record<string, string> = { "/run/secrets/admin": token + "\n" };
  const read = (p: string) => {
    if (!(p in files)) throw new Error("No such file or directory");
    return files[p];
  };
  const parse = (args: string[], env = {}) => parseConfig(args, env, 2, read).config!;
  assert.equal(parse(["--admin-token-file", "/run/secrets/admin"]).adminToken, token);
  assert.equal(
    parse([], { ADMIN_TOKEN: "from-the-env-0123456789" }).adminToken,
    "from-the-env-0123456789",
  );
  assert.equal(parse([]).adminToken, undefined);
  for (const args of [["--admin-token", "x".repeat(20)], [`--admin-token=${"x".repeat(20)}`]]) {
    assert.throws(() => parse(args), /--admin-token would show the token in every process listing/);
  }
  assert.throws(
    () => parse(["--admin-token-file", "/nope"]),
    /Cannot read --admin-token-file \/nope: No such file/,
  );
  files["/short"] = "short\n";
  assert.throws(() => parse(["--admin-token-file", "/short"]), /at least 16 characters, got 5/);
});

Deno.test("parseConfig() takes --precision auto (default), fp32 or int8 and refuses others", () => {
  assert.equal(parseConfig([]).config!.precision, "auto");
  assert.equal(parseConfig(["--precision", "fp32"]).config!.precision, "fp32");
  assert.throws(() => parseConfig(["--precision", "fp16"]), /must be one of auto, fp32, int8/);
});
