/**
 * The server's configuration: every flag with its type, default and help text, parsed once
 * (common/flags.ts) into a typed, validated ServeConfig. Unknown flags, stray arguments and
 * out-of-range values are errors. Pure: the caller passes argv and the environment.
 */
import { FlagError, formatHelp, parseFlags } from "../common/flags.ts";
import { DEFAULT_MAX_PIXELS } from "../common/image_codec.ts";
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
  /** onnxruntime threads per session; 0 = auto (see loadBackend). */
  threads: number;
  /** Session workers per loaded model; 0 = auto: one per core for wasm, in-process for native. */
  workers: number;
  /** Batches in flight per wasm worker: 1 runs, the rest wait in the worker. */
  pipelineDepth: number;
  /** Longest a request waits for a fuller batch while another run is in flight, ms. */
  maxQueueDelayMs: number;
  maxBodyBytes: number;
  maxPixels: number;
  maxBatch: number;
  maxSamples: number;
  /** Enables /v1/admin; never logged. */
  adminToken: string | undefined;
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
}

export const FLAG_SPECS = {
  port: {
    type: "int",
    default: 8000,
    env: "PORT",
    help: "TCP port to listen on (0 picks a free port)",
  },
  host: { type: "string", default: "0.0.0.0", help: "interface to bind" },
  "reuse-port": {
    type: "boolean",
    default: false,
    help:
      "share the port with other replicas (SO_REUSEPORT, Linux): several processes on one registry, the kernel spreads connections",
  },
  replicas: {
    type: "int",
    default: 1,
    help:
      "service processes sharing the port, this one included (0: one per CPU core); this one starts and supervises the others (restarts them if they crash, stops them with it). Needs --allow-run; implies --reuse-port",
  },
  registry: {
    type: "string",
    default: "models",
    help:
      "model registry: a dir <registry>/<name>/<version>/ + <name>/CURRENT, or an http(s):// URL of the same layout (read-only, needs --model)",
  },
  model: { type: "string", help: "model name in the registry (needed when it holds several)" },
  bundle: { type: "string", help: "serve this bundle directory directly, bypassing the registry" },
  backend: {
    type: "string",
    default: "auto",
    choices: ["auto", "native", "wasm"],
    help:
      "onnxruntime: native (onnxruntime-node), wasm (onnxruntime-web), auto = native if it loads",
  },
  // Auto: the pool already runs one batch per core, so more threads per session would
  // oversubscribe the small machines this targets (wasm needs an explicit count under Deno).
  threads: {
    type: "int",
    default: 0,
    help:
      "onnxruntime threads per session (0: cores / workers, at least 1; cores for in-process native)",
  },
  // One per core: each worker runs one batch at a time, off the HTTP thread.
  workers: {
    type: "int",
    default: 0,
    help:
      "wasm inference workers per loaded model, each with its own copy of the sessions (0: one per CPU core); native sessions always run in-process",
  },
  // Two: the next batch waits inside the worker while the current one runs, so a worker never
  // idles for the round trip to the HTTP thread (measured: +20% req/s for wasm at 32 connections).
  "pipeline-depth": {
    type: "int",
    default: 2,
    help:
      "batches in flight per wasm inference worker: 1 runs, the others wait in the worker (1: send the next only when one ends)",
  },
  // 0.3 ms: with pipelining, long enough to give the waiting batch company, short enough that
  // it is in the worker before the running batch (3-8 ms here) ends; measured best of 0, 0.3 and
  // 1 ms. It only applies while another batch is running (idle requests never wait).
  "max-queue-delay-ms": {
    type: "number",
    default: 0.3,
    help: "while a batch is running, longest a request waits for a fuller batch (0: never wait)",
  },
  "max-body-bytes": {
    type: "int",
    default: 4 * 1024 * 1024,
    help: "largest request body accepted (413 above)",
  },
  "max-pixels": {
    type: "int",
    default: DEFAULT_MAX_PIXELS,
    help: "most declared pixels per image and per request, checked before decoding (413 above)",
  },
  "max-batch": {
    type: "int",
    default: 256,
    help: "most images per request, and per onnxruntime run (requests are batched up to it)",
  },
  "admin-token": {
    type: "string",
    env: "ADMIN_TOKEN",
    help: "enables POST /v1/admin/* for requests with Authorization: Bearer <token>",
  },
  watch: {
    type: "boolean",
    default: true,
    help: "watch the registry dir and hot-swap to a newly activated version",
  },
  // Five seconds: cheap (one small read), and the bound on how late a replica whose file
  // events cannot see the publisher (network mount, HTTP registry) notices a new version.
  "poll-ms": {
    type: "int",
    default: 5000,
    help: "also re-read the registry's CURRENT every N ms (0: never; HTTP registries only poll)",
  },
  "cache-dir": {
    type: "string",
    default: ".registry-cache",
    help: "where bundles from an HTTP(S) registry are downloaded and verified",
  },
  "max-samples": {
    type: "int",
    default: 64,
    help: "most latent samples per image on /v1/latent?samples=k",
  },
  // 0.5: a map that loses most neighbours misleads more than it helps; a better map is marked
  // with its own share in every answer, so a client may insist on more.
  "translate-min-neighbours": {
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
    type: "int",
    default: 32,
    help: "items per re-embedding batch after a hot swap",
  },
  "gallery-pause-ms": {
    type: "int",
    default: 5,
    help:
      "least pause between re-embedding batches, ms (and at least the batch's own time, so re-embedding takes at most half the model's time)",
  },
} as const;

export const USAGE =
  "Usage: deno task serve [flags]\n\nServes a Fashion-MNIST VAE bundle over HTTP (see GET /docs once running).";

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

function unitInterval(v: number): number {
  if (!(v >= 0 && v <= 1)) {
    throw new ConfigError(`--translate-min-neighbours must be in 0..1, got ${v}`);
  }
  return v;
}

/** Parses argv (without the program name). Returns null config when --help was asked for. */
export function parseConfig(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
  cores: number = navigator.hardwareConcurrency || 1,
): { config: ServeConfig | null } {
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
  const adminToken = flags["admin-token"] as string | undefined;
  if (adminToken !== undefined && adminToken.length < 16) {
    // The value itself is not echoed: it may be a real secret with a typo.
    throw new ConfigError(
      `--admin-token / ADMIN_TOKEN must be at least 16 characters, got ${adminToken.length}`,
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
      threads,
      workers,
      maxQueueDelayMs: delay,
      pipelineDepth: positive("pipeline-depth", flags["pipeline-depth"] as number),
      maxBodyBytes: positive("max-body-bytes", flags["max-body-bytes"] as number, 1024),
      maxPixels: positive("max-pixels", flags["max-pixels"] as number, 784),
      maxBatch: positive("max-batch", flags["max-batch"] as number),
      maxSamples: positive("max-samples", flags["max-samples"] as number, 0),
      adminToken: adminToken || undefined,
      watch: flags.watch as boolean,
      pollMs: positive("poll-ms", flags["poll-ms"] as number, 0),
      cacheDir: flags["cache-dir"] as string,
      translateMinNeighbours: unitInterval(flags["translate-min-neighbours"] as number),
      gallery: (flags.gallery as string | undefined) || undefined,
      gallerySeed: positive("gallery-seed", flags["gallery-seed"] as number, 0),
      dataDir: flags["data-dir"] as string,
      galleryBatch: positive("gallery-batch", flags["gallery-batch"] as number),
      galleryPauseMs: positive("gallery-pause-ms", flags["gallery-pause-ms"] as number, 0),
    },
  };
}

/** Defaults, for tests and embedders that build the app without argv. */
export function defaultConfig(over: Partial<ServeConfig> = {}): ServeConfig {
  return { ...parseConfig([]).config!, ...over };
}
