/**
 * The server's configuration: every flag with its type, default and help text, parsed once
 * (common/flags.ts) into a typed, validated ServeConfig. Unknown flags, stray arguments and
 * out-of-range values are errors. Pure: the caller passes argv and the environment.
 */
import { FlagError, formatHelp, parseFlags } from "../common/flags.ts";
import { DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS } from "../common/image_codec.ts";
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

export const FLAG_SPECS = {
  port: {
    type: "int",
    default: 8000,
    env: "PORT",
    help: "TCP port to listen on (0 picks a free port)",
  },
  host: { type: "string", env: "HOST", default: "0.0.0.0", help: "interface to bind" },
  "reuse-port": {
    type: "boolean",
    env: "REUSE_PORT",
    default: false,
    help:
      "share the port with other replicas (SO_REUSEPORT, Linux): several processes on one registry, the kernel spreads connections",
  },
  replicas: {
    type: "int",
    env: "REPLICAS",
    default: 1,
    help:
      "service processes sharing the port, this one included (0: one per CPU core); this one starts and supervises the others (restarts them if they crash, stops them with it). Needs --allow-run; implies --reuse-port",
  },
  registry: {
    type: "string",
    env: "MODEL_REGISTRY",
    default: "models",
    help:
      "model registry: a dir <registry>/<name>/<version>/ + <name>/CURRENT, an http(s):// URL of the same layout (read-only, needs --model), or s3://bucket/prefix (AWS_* environment variables)",
  },
  model: {
    type: "string",
    env: "MODEL_NAME",
    help: "model name in the registry (needed when it holds several)",
  },
  bundle: {
    type: "string",
    env: "MODEL_BUNDLE",
    help: "serve this bundle directory directly, bypassing the registry",
  },
  backend: {
    type: "string",
    env: "BACKEND",
    default: "auto",
    choices: ["auto", "native", "wasm"],
    help:
      "onnxruntime: native (onnxruntime-node), wasm (onnxruntime-web), auto = native if it loads",
  },
  precision: {
    type: "string",
    env: "PRECISION",
    default: "auto",
    choices: ["auto", "fp32", "int8"],
    help:
      "serving graph: auto = the bundle's int8 graph when it has one (faster), else fp32; int8 refuses bundles without one",
  },
  // Auto: the pool already runs one batch per core, so more threads per session would
  // oversubscribe the small machines this targets (wasm needs an explicit count under Deno).
  threads: {
    type: "int",
    env: "THREADS",
    default: 0,
    help:
      "onnxruntime threads per session (0: cores / workers, at least 1; cores for in-process native)",
  },
  // One per core: each worker runs one batch at a time, off the HTTP thread.
  workers: {
    type: "int",
    env: "WORKERS",
    default: 0,
    help:
      "wasm inference workers per loaded model, each with its own copy of the sessions (0: one per CPU core); native sessions always run in-process",
  },
  // Two: the next batch waits inside the worker while the current one runs, so a worker never
  // idles for the round trip to the HTTP thread (the A/B runs: docs/performance.md).
  "pipeline-depth": {
    type: "int",
    env: "PIPELINE_DEPTH",
    default: 2,
    help:
      "batches in flight per wasm inference worker: 1 runs, the others wait in the worker (1: send the next only when one ends)",
  },
  // 0.3 ms: with pipelining, long enough to give the waiting batch company, short enough that
  // it is in the worker before the running batch ends (the A/B runs: docs/performance.md). It
  // only applies while another batch is running (idle requests never wait).
  "max-queue-delay-ms": {
    type: "number",
    env: "MAX_QUEUE_DELAY_MS",
    default: 0.3,
    help: "while a batch is running, longest a request waits for a fuller batch (0: never wait)",
  },
  // 32: a 32-image run is a few ms here, so a one-image request behind 256-image batches of
  // other clients waits that long instead of whole batches; see docs/performance.md.
  "chunk-rows": {
    env: "CHUNK_ROWS",
    type: "int",
    default: 32,
    help:
      "requests with more images run in chunks of this many, and small requests go first in each run (0: whole requests, arrival order)",
  },
  "max-body-bytes": {
    type: "int",
    env: "MAX_BODY_BYTES",
    default: 4 * 1024 * 1024,
    help: "largest request body accepted (413 above)",
  },
  "max-pixels": {
    type: "int",
    env: "MAX_PIXELS",
    default: DEFAULT_MAX_PIXELS,
    help: "most declared pixels per image and per request, checked before decoding (413 above)",
  },
  "max-decoded-bytes": {
    env: "MAX_DECODED_BYTES",
    type: "int",
    default: DEFAULT_MAX_DECODED_BYTES,
    help:
      "most bytes an image's decoded samples may take (width x height x channels x bytes per sample), per image and per request, checked before decoding (413 above)",
  },
  "max-batch": {
    type: "int",
    env: "MAX_BATCH",
    default: 256,
    help: "most images per request, and per onnxruntime run (requests are batched up to it)",
  },
  // A file or the environment, never argv: a flag's value shows in every process listing.
  "admin-token-file": {
    env: "ADMIN_TOKEN_FILE",
    type: "string",
    help:
      "file holding the admin token (or set ADMIN_TOKEN); enables POST /v1/admin/* for Authorization: Bearer <token>",
  },
  // Ten seconds: a batch of 256 PNGs takes well under a second here; orchestrators commonly
  // allow 30 s between SIGTERM and SIGKILL.
  "shutdown-grace-ms": {
    env: "SHUTDOWN_GRACE_MS",
    type: "int",
    default: 10_000,
    help:
      "on SIGTERM/SIGINT: answer 503 to new requests and wait this long for in-flight ones before closing",
  },
  "body-timeout-ms": {
    env: "BODY_TIMEOUT_MS",
    type: "int",
    default: 10_000,
    help: "a request body must arrive within this many ms of its headers (408 after; 0: no limit)",
  },
  "max-inflight": {
    env: "MAX_INFLIGHT",
    type: "int",
    default: 1024,
    help: "most requests handled at once; above it new ones get 503 at once (0: no cap)",
  },
  watch: {
    type: "boolean",
    env: "WATCH",
    default: true,
    help: "watch the registry dir and hot-swap to a newly activated version",
  },
  // Five seconds: cheap (one small read), and the bound on how late a replica whose file
  // events cannot see the publisher (network mount, HTTP registry) notices a new version.
  "poll-ms": {
    type: "int",
    env: "POLL_MS",
    default: 5000,
    help:
      "also re-read the registry's CURRENT every N ms (0: never; HTTP and S3 registries only poll)",
  },
  "cache-dir": {
    type: "string",
    env: "CACHE_DIR",
    default: ".registry-cache",
    help: "where bundles from an HTTP(S) or S3 registry are downloaded and verified",
  },
  "max-samples": {
    type: "int",
    env: "MAX_SAMPLES",
    default: 64,
    help: "most latent samples per image on /v1/latent?samples=k",
  },
  "novelty-percentile": {
    type: "number",
    env: "NOVELTY_PERCENTILE",
    help:
      "novelty threshold as a percentile of the bundle's held-out images: above it an input is out of distribution (default: the bundle's, 95)",
  },
  // 0.5: a map that loses most neighbours misleads more than it helps; a better map is marked
  // with its own share in every answer, so a client may insist on more.
  "translate-min-neighbours": {
    env: "TRANSLATE_MIN_NEIGHBOURS",
    type: "number",
    default: 0.5,
    help: "refuse latent translations whose recorded 10-NN share (held-out images) is below this",
  },
  gallery: {
    type: "string",
    env: "GALLERY_DB",
    help: "SQLite file of the similarity gallery (/v1/similar); created when missing",
  },
  "gallery-seed": {
    env: "GALLERY_SEED",
    type: "int",
    default: 0,
    help: "when the gallery is empty at start, add the first N Fashion-MNIST test images",
  },
  "data-dir": {
    type: "string",
    default: "/usr/share/datasets/fashion-mnist",
    env: "FASHION_MNIST_DIR",
    help: "Fashion-MNIST IDX files (for --gallery-seed)",
  },
  "gallery-batch": {
    env: "GALLERY_BATCH",
    type: "int",
    default: 32,
    help: "items per re-embedding batch after a hot swap",
  },
  "gallery-pause-ms": {
    env: "GALLERY_PAUSE_MS",
    type: "int",
    default: 5,
    help:
      "least pause between re-embedding batches, ms (and at least the batch's own time, so re-embedding takes at most half the model's time)",
  },
  // A canary is judged against bounds an operator would page on, not against the primary: a
  // small share of traffic has too few requests for a fair two-sample comparison.
  "canary-max-error-rate": {
    env: "CANARY_MAX_ERROR_RATE",
    type: "number",
    default: 0.02,
    help: "stop routing to a canary whose share of 5xx answers passes this (0..1)",
  },
  "canary-max-p99-ms": {
    env: "CANARY_MAX_P99_MS",
    type: "number",
    default: 1000,
    help: "stop routing to a canary whose p99 latency (last 1000 requests) passes this, ms",
  },
  "canary-min-requests": {
    env: "CANARY_MIN_REQUESTS",
    type: "int",
    default: 100,
    help: "canary requests seen before the bounds are applied",
  },
  "shadow-queue": {
    env: "SHADOW_QUEUE",
    type: "int",
    default: 256,
    help: "most requests waiting for the shadow version; more are dropped and counted",
  },
} as const;

/** The canary bounds and shadow queue, checked. */
function trafficConfig(flags: Record<string, unknown>) {
  const rate = flags["canary-max-error-rate"] as number;
  if (!(rate >= 0 && rate <= 1)) {
    throw new ConfigError(`--canary-max-error-rate must be in 0..1, got ${rate}`);
  }
  const p99 = flags["canary-max-p99-ms"] as number;
  if (!(p99 > 0)) throw new ConfigError(`--canary-max-p99-ms must be > 0, got ${p99}`);
  return {
    canaryMaxErrorRate: rate,
    canaryMaxP99Ms: p99,
    canaryMinRequests: positive("canary-min-requests", flags["canary-min-requests"] as number),
    shadowQueue: positive("shadow-queue", flags["shadow-queue"] as number),
  };
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

function positive(name: string, v: number, min = 1): number {
  if (v < min) throw new ConfigError(`--${name} must be >= ${min}, got ${v}`);
  return v;
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

function unitInterval(v: number): number {
  if (!(v >= 0 && v <= 1)) {
    throw new ConfigError(`--translate-min-neighbours must be in 0..1, got ${v}`);
  }
  return v;
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
  readText: (path: string) => string = (p) => Deno.readTextFileSync(p),
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
  const port = flags.port as number;
  if (port < 0 || port > 65535) throw new ConfigError(`--port must be 0..65535, got ${port}`);
  if (flags.bundle !== undefined && flags.model !== undefined) {
    throw new ConfigError(
      "--bundle serves one directory and bypasses the registry; do not combine it with --model",
    );
  }
  const registry = flags.registry as string;
  if (/^https?:\/\//i.test(registry) && flags.bundle === undefined && flags.model === undefined) {
    throw new ConfigError(
      "--registry as a URL needs --model <name>: an HTTP registry cannot list its models",
    );
  }
  if (isS3Registry(registry) && flags.bundle === undefined) {
    try {
      parseS3Url(registry);
    } catch (e) {
      throw new ConfigError(`--registry: ${(e as Error).message}`);
    }
  }
  const adminToken = readAdminToken(flags["admin-token-file"] as string | undefined, env, readText);
  if (adminToken !== undefined && adminToken.length < 16) {
    // The value itself is not echoed: it may be a real secret with a typo.
    throw new ConfigError(
      `The admin token (ADMIN_TOKEN / --admin-token-file) must be at least 16 characters, got ${adminToken.length}`,
    );
  }
  // 0 stays 0 (auto): the right pool depends on the backend, which loadBackend() settles.
  const workers = positive("workers", flags.workers as number, 0);
  const threads = positive("threads", flags.threads as number, 0);
  const replicas = (flags.replicas as number) === 0
    ? cores
    : positive("replicas", flags.replicas as number, 0);
  const delay = flags["max-queue-delay-ms"] as number;
  if (!(delay >= 0 && delay <= 1000)) {
    throw new ConfigError(`--max-queue-delay-ms must be in 0..1000, got ${delay}`);
  }
  const noveltyPct = flags["novelty-percentile"] as number | undefined;
  if (noveltyPct !== undefined && !(noveltyPct >= 0 && noveltyPct <= 100)) {
    throw new ConfigError(`--novelty-percentile must be in 0..100, got ${noveltyPct}`);
  }
  return {
    config: {
      port,
      host: flags.host as string,
      reusePort: (flags["reuse-port"] as boolean) || replicas > 1,
      replicas,
      registry,
      model: flags.model as string | undefined,
      bundle: flags.bundle as string | undefined,
      backend: flags.backend as BackendChoice,
      precision: flags.precision as PrecisionChoice,
      threads,
      workers,
      maxQueueDelayMs: delay,
      chunkRows: positive("chunk-rows", flags["chunk-rows"] as number, 0),
      pipelineDepth: positive("pipeline-depth", flags["pipeline-depth"] as number),
      maxBodyBytes: positive("max-body-bytes", flags["max-body-bytes"] as number, 1024),
      maxPixels: positive("max-pixels", flags["max-pixels"] as number, 784),
      maxDecodedBytes: positive("max-decoded-bytes", flags["max-decoded-bytes"] as number, 784),
      maxBatch: positive("max-batch", flags["max-batch"] as number),
      maxSamples: positive("max-samples", flags["max-samples"] as number, 0),
      adminToken: adminToken || undefined,
      watch: flags.watch as boolean,
      pollMs: positive("poll-ms", flags["poll-ms"] as number, 0),
      cacheDir: flags["cache-dir"] as string,
      shutdownGraceMs: positive("shutdown-grace-ms", flags["shutdown-grace-ms"] as number, 0),
      bodyTimeoutMs: positive("body-timeout-ms", flags["body-timeout-ms"] as number, 0),
      maxInflight: positive("max-inflight", flags["max-inflight"] as number, 0),
      ...(noveltyPct !== undefined ? { noveltyPercentile: noveltyPct } : {}),
      translateMinNeighbours: unitInterval(flags["translate-min-neighbours"] as number),
      gallery: (flags.gallery as string | undefined) || undefined,
      gallerySeed: positive("gallery-seed", flags["gallery-seed"] as number, 0),
      dataDir: flags["data-dir"] as string,
      galleryBatch: positive("gallery-batch", flags["gallery-batch"] as number),
      galleryPauseMs: positive("gallery-pause-ms", flags["gallery-pause-ms"] as number, 0),
      ...trafficConfig(flags),
    },
  };
}

/** Defaults, for tests and embedders that build the app without argv. */
export function defaultConfig(over: Partial<ServeConfig> = {}): ServeConfig {
  return { ...parseConfig([]).config!, ...over };
}
