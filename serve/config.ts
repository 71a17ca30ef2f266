/**
 * The server's configuration: the flags of ./config_flags.ts parsed once (common/flags.ts) into a
 * typed, validated ServeConfig. Each flag's value goes to its field after its range check; the
 * checks that span several flags are here. Unknown flags, stray arguments and out-of-range
 * values are errors. Pure: the caller passes argv and the environment.
 */
import { readFileSync } from "node:fs";
import { FlagError, formatHelp, parseFlags } from "../common/flags.ts";
import { FLAG_SPECS, type ServeFlag } from "./config_flags.ts";
import { isS3Registry, parseS3Url } from "../registry/s3_location.ts";
import type { PrecisionChoice } from "../bundle/precision.ts";
import type { BackendChoice } from "./inference/backend.ts";

export interface ServeConfig {
  port: number;
  host: string;
  reusePort: boolean;
  /** Service processes on the port, this one included; 0 = one per core (replicas.ts). */
  replicas: number;
  registry: string;
  model: string | undefined;
  bundle: string | undefined;
  backend: BackendChoice;
  /** Serving graph: int8 when the bundle carries one (auto), or always fp32 / int8. */
  precision: PrecisionChoice;
  /** onnxruntime threads per session; 0 = auto (see loadBackend). */
  threads: number;
  /** Session workers per loaded model; 0 = auto: one per core for wasm, in-process for native. */
  workers: number;
  /** Batches in flight per wasm worker: 1 runs, the rest wait in the worker. */
  pipelineDepth: number;
  /** Longest a request waits for a fuller batch while another run is in flight, ms. */
  maxQueueDelayMs: number;
  /** Larger requests run in chunks of this many rows, interleaved with small ones; 0: whole. */
  chunkRows: number;
  maxBodyBytes: number;
  maxPixels: number;
  /** Most bytes of decoded samples per image and per request (bit depth and channels). */
  maxDecodedBytes: number;
  maxBatch: number;
  maxSamples: number;
  /** Novelty threshold as a held-out percentile; undefined: each bundle's own (95th). */
  noveltyPercentile?: number;
  /** Enables /v1/admin; from ADMIN_TOKEN or --admin-token-file, never argv; never logged. */
  adminToken: string | undefined;
  /** Longest a shutdown waits for in-flight requests before closing connections, ms. */
  shutdownGraceMs: number;
  /** Longest a request body may take to arrive, ms (408 after; 0: no deadline). */
  bodyTimeoutMs: number;
  /** Most requests handled at once; more get 503 at once (0: no cap). */
  maxInflight: number;
  watch: boolean;
  pollMs: number;
  cacheDir: string;
  /** Latent translation links keeping a smaller share of 10 nearest neighbours are refused. */
  translateMinNeighbours: number;
  /** SQLite file of the similarity gallery (serve/gallery/); none: no gallery. */
  gallery: string | undefined;
  /** Seed an empty gallery with this many Fashion-MNIST test images at start (0: never). */
  gallerySeed: number;
  /** Fashion-MNIST IDX files for --gallery-seed. */
  dataDir: string;
  /** Re-embedding after a swap: items per batch, and the pause between batches (ms). */
  galleryBatch: number;
  galleryPauseMs: number;
  /** Automatic canary abort bounds (serve/traffic/guard.ts) and the shadow's queue. */
  canaryMaxErrorRate: number;
  canaryMaxP99Ms: number;
  canaryMinRequests: number;
  shadowQueue: number;
}

export const USAGE =
  "Usage: deno task serve [flags]\n\nServes a VAE bundle (any labelled image set; Fashion-MNIST by default) over HTTP (see GET /docs once running).";

export function helpText(): string {
  return formatHelp(USAGE, FLAG_SPECS);
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The environment variable that holds the admin token itself (never a flag: see above). */
export const ADMIN_TOKEN_ENV = "ADMIN_TOKEN";

/** The admin token from --admin-token-file (trailing newline trimmed) or ADMIN_TOKEN. */
function readAdminToken(
  file: string | undefined,
  env: Record<string, string | undefined>,
  readText: (path: string) => string,
): string | undefined {
  if (file === undefined) return env[ADMIN_TOKEN_ENV] || undefined;
  try {
    return readText(file).replace(/\r?\n$/, "") || undefined;
  } catch (e) {
    throw new ConfigError(`Cannot read --admin-token-file ${file}: ${(e as Error).message}`);
  }
}

/**
 * What an entry point does with its command line: the config, or the exit code after printing
 * the help (0) or the flag error with the help (2).
 */
export function configOrExit(
  args: readonly string[],
  env: Record<string, string | undefined>,
  cores?: number,
): ServeConfig | number {
  try {
    const { config } = parseConfig(args, env, cores);
    if (config) return config;
    console.log(helpText());
    return 0;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(`${e.message}\n\n${helpText()}`);
    return 2;
  }
}

/** Parses argv (without the program name). Returns null config when --help was asked for. */
export function parseConfig(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  cores: number = navigator.hardwareConcurrency || 1,
  readText: (path: string) => string = (p) => readFileSync(p, "utf8"), // node:fs: both runtimes
): { config: ServeConfig | null } {
  if (args.some((a) => a === "--admin-token" || a.startsWith("--admin-token="))) {
    throw new ConfigError(
      "--admin-token would show the token in every process listing (ps); set ADMIN_TOKEN or --admin-token-file <path> instead",
    );
  }
  let parsed;
  try {
    parsed = parseFlags(args, FLAG_SPECS, env);
  } catch (e) {
    if (e instanceof FlagError) throw new ConfigError(e.message);
    throw e;
  }
  const { flags, positional } = parsed;
  if (flags.help) return { config: null };
  if (positional.length) {
    throw new ConfigError(
      `Unexpected argument(s) ${
        positional.map((p) => JSON.stringify(p)).join(" ")
      }; all options are --flags`,
    );
  }
  const config = fromTable(flags);
  checkSource(config);
  const adminToken = readAdminToken(flags["admin-token-file"] as string | undefined, env, readText);
  if (adminToken !== undefined && adminToken.length < 16) {
    // The value itself is not echoed: it may be a real secret with a typo.
    throw new ConfigError(
      `The admin token (ADMIN_TOKEN / --admin-token-file) must be at least 16 characters, got ${adminToken.length}`,
    );
  }
  config.adminToken = adminToken;
  // 0 replicas: one per core; more than one share the port. Workers and threads stay 0 (auto):
  // the right pool depends on the backend, which loadBackend() settles.
  if (config.replicas === 0) config.replicas = cores;
  config.reusePort ||= config.replicas > 1;
  config.gallery ||= undefined;
  return { config };
}

/** Each flag with a field, range-checked, into its field (an unset optional flag stays out). */
function fromTable(flags: Record<string, unknown>): ServeConfig {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(FLAG_SPECS) as [string, ServeFlag][]) {
    const v = flags[name];
    if (spec.field === undefined || v === undefined) continue;
    if (typeof v === "number") inRange(name, v, spec);
    out[spec.field] = v;
  }
  return out as unknown as ServeConfig;
}

function inRange(name: string, v: number, { min, max }: ServeFlag): void {
  if (max !== undefined && !(v >= (min ?? -Infinity) && v <= max)) {
    throw new ConfigError(`--${name} must be in ${min}..${max}, got ${v}`);
  }
  if (min !== undefined && !(v >= min)) {
    throw new ConfigError(`--${name} must be >= ${min}, got ${v}`);
  }
}

/** The flags that choose where models come from must agree with each other. */
function checkSource(c: ServeConfig): void {
  if (c.bundle !== undefined && c.model !== undefined) {
    throw new ConfigError(
      "--bundle serves one directory and bypasses the registry; do not combine it with --model",
    );
  }
  if (/^https?:\/\//i.test(c.registry) && c.bundle === undefined && c.model === undefined) {
    throw new ConfigError(
      "--registry as a URL needs --model <name>: an HTTP registry cannot list its models",
    );
  }
  if (isS3Registry(c.registry) && c.bundle === undefined) {
    try {
      parseS3Url(c.registry);
    } catch (e) {
      throw new ConfigError(`--registry: ${(e as Error).message}`);
    }
  }
}

/** Defaults, for tests and embedders that build the app without argv. */
export function defaultConfig(over: Partial<ServeConfig> = {}): ServeConfig {
  return { ...parseConfig([]).config!, ...over };
}
