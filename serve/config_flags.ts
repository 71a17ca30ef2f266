/**
 * The server's flag table: one entry per flag with its type, default, environment variable and
 * help text (common/flags.ts), the ServeConfig field it sets and the range its value must be in.
 * A new flag is one entry here and one field of ServeConfig; ./config.ts parses and checks
 * every entry the same way and holds only the checks that span several flags.
 */
import type { FlagSpec } from "../common/flags.ts";
import { DEFAULT_MAX_DECODED_BYTES, DEFAULT_MAX_PIXELS } from "../common/image_codec.ts";
import type { ServeConfig } from "./config.ts";
import { DATA_DIR_ENV, DEFAULT_DATA_DIR } from "../common/fashion_mnist.ts";

export interface ServeFlag extends FlagSpec {
  /** The config field the flag sets; none for flags read by hand (--admin-token-file). */
  field?: keyof ServeConfig;
  /** Inclusive bounds of a number flag's value. */
  min?: number;
  max?: number;
}

export const FLAG_SPECS = {
  port: {
    field: "port",
    min: 0,
    max: 65535,
    type: "int",
    default: 8000,
    env: "PORT",
    help: "TCP port to listen on (0 picks a free port)",
  },
  host: {
    field: "host",
    type: "string",
    env: "HOST",
    default: "0.0.0.0",
    help: "interface to bind",
  },
  "reuse-port": {
    field: "reusePort",
    type: "boolean",
    env: "REUSE_PORT",
    default: false,
    help:
      "share the port with other replicas (SO_REUSEPORT, Linux): several processes on one registry, the kernel spreads connections",
  },
  replicas: {
    field: "replicas",
    min: 0,
    type: "int",
    env: "REPLICAS",
    default: 1,
    help:
      "service processes sharing the port, this one included (0: one per CPU core); this one starts and supervises the others (restarts them if they crash, stops them with it). Needs --allow-run; implies --reuse-port",
  },
  registry: {
    field: "registry",
    type: "string",
    env: "MODEL_REGISTRY",
    default: "models",
    help:
      "model registry: a dir <registry>/<name>/<version>/ + <name>/CURRENT, an http(s):// URL of the same layout (read-only, needs --model), or s3://bucket/prefix (AWS_* environment variables)",
  },
  model: {
    field: "model",
    type: "string",
    env: "MODEL_NAME",
    help: "model name in the registry (needed when it holds several)",
  },
  bundle: {
    field: "bundle",
    type: "string",
    env: "MODEL_BUNDLE",
    help: "serve this bundle directory directly, bypassing the registry",
  },
  backend: {
    field: "backend",
    type: "string",
    env: "BACKEND",
    default: "auto",
    choices: ["auto", "native", "wasm"],
    help:
      "onnxruntime: native (onnxruntime-node), wasm (onnxruntime-web), auto = native if it loads",
  },
  precision: {
    field: "precision",
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
    field: "threads",
    min: 0,
    type: "int",
    env: "THREADS",
    default: 0,
    help:
      "onnxruntime threads per session (0: cores / workers, at least 1; cores for in-process native)",
  },
  // One per core: each worker runs one batch at a time, off the HTTP thread.
  workers: {
    field: "workers",
    min: 0,
    type: "int",
    env: "WORKERS",
    default: 0,
    help:
      "wasm inference workers per loaded model, each with its own copy of the sessions (0: one per CPU core); native sessions always run in-process",
  },
  // Two: the next batch waits inside the worker while the current one runs, so a worker never
  // idles for the round trip to the HTTP thread (the A/B runs: docs/performance.md).
  "pipeline-depth": {
    field: "pipelineDepth",
    min: 1,
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
    field: "maxQueueDelayMs",
    min: 0,
    max: 1000,
    type: "number",
    env: "MAX_QUEUE_DELAY_MS",
    default: 0.3,
    help: "while a batch is running, longest a request waits for a fuller batch (0: never wait)",
  },
  // 32: a 32-image run is a few ms here, so a one-image request behind 256-image batches of
  // other clients waits that long instead of whole batches; see docs/performance.md.
  "chunk-rows": {
    field: "chunkRows",
    min: 0,
    env: "CHUNK_ROWS",
    type: "int",
    default: 32,
    help:
      "requests with more images run in chunks of this many, and small requests go first in each run (0: whole requests, arrival order)",
  },
  "max-body-bytes": {
    field: "maxBodyBytes",
    min: 1024,
    type: "int",
    env: "MAX_BODY_BYTES",
    default: 4 * 1024 * 1024,
    help: "largest request body accepted (413 above)",
  },
  "max-pixels": {
    field: "maxPixels",
    min: 784,
    type: "int",
    env: "MAX_PIXELS",
    default: DEFAULT_MAX_PIXELS,
    help: "most declared pixels per image and per request, checked before decoding (413 above)",
  },
  "max-decoded-bytes": {
    field: "maxDecodedBytes",
    min: 784,
    env: "MAX_DECODED_BYTES",
    type: "int",
    default: DEFAULT_MAX_DECODED_BYTES,
    help:
      "most bytes an image's decoded samples may take (width x height x channels x bytes per sample), per image and per request, checked before decoding (413 above)",
  },
  "max-batch": {
    field: "maxBatch",
    min: 1,
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
    field: "shutdownGraceMs",
    min: 0,
    env: "SHUTDOWN_GRACE_MS",
    type: "int",
    default: 10_000,
    help:
      "on SIGTERM/SIGINT: answer 503 to new requests and wait this long for in-flight ones before closing",
  },
  "body-timeout-ms": {
    field: "bodyTimeoutMs",
    min: 0,
    env: "BODY_TIMEOUT_MS",
    type: "int",
    default: 10_000,
    help: "a request body must arrive within this many ms of its headers (408 after; 0: no limit)",
  },
  "max-inflight": {
    field: "maxInflight",
    min: 0,
    env: "MAX_INFLIGHT",
    type: "int",
    default: 1024,
    help: "most requests handled at once; above it new ones get 503 at once (0: no cap)",
  },
  watch: {
    field: "watch",
    type: "boolean",
    env: "WATCH",
    default: true,
    help: "watch the registry dir and hot-swap to a newly activated version",
  },
  // Five seconds: cheap (one small read), and the bound on how late a replica whose file
  // events cannot see the publisher (network mount, HTTP registry) notices a new version.
  "poll-ms": {
    field: "pollMs",
    min: 0,
    type: "int",
    env: "POLL_MS",
    default: 5000,
    help:
      "also re-read the registry's CURRENT every N ms (0: never; HTTP and S3 registries only poll)",
  },
  "cache-dir": {
    field: "cacheDir",
    type: "string",
    env: "CACHE_DIR",
    default: ".registry-cache",
    help: "where bundles from an HTTP(S) or S3 registry are downloaded and verified",
  },
  "max-samples": {
    field: "maxSamples",
    min: 0,
    type: "int",
    env: "MAX_SAMPLES",
    default: 64,
    help: "most latent samples per image on /v1/latent?samples=k",
  },
  "novelty-percentile": {
    field: "noveltyPercentile",
    min: 0,
    max: 100,
    type: "number",
    env: "NOVELTY_PERCENTILE",
    help:
      "novelty threshold as a percentile of the bundle's held-out images: above it an input is out of distribution (default: the bundle's, 95)",
  },
  // 0.5: a map that loses most neighbours misleads more than it helps; a better map is marked
  // with its own share in every answer, so a client may insist on more.
  "translate-min-neighbours": {
    field: "translateMinNeighbours",
    min: 0,
    max: 1,
    env: "TRANSLATE_MIN_NEIGHBOURS",
    type: "number",
    default: 0.5,
    help: "refuse latent translations whose recorded 10-NN share (held-out images) is below this",
  },
  gallery: {
    field: "gallery",
    type: "string",
    env: "GALLERY_DB",
    help: "SQLite file of the similarity gallery (/v1/similar); created when missing",
  },
  "gallery-seed": {
    field: "gallerySeed",
    min: 0,
    env: "GALLERY_SEED",
    type: "int",
    default: 0,
    help: "when the gallery is empty at start, add the first N Fashion-MNIST test images",
  },
  "data-dir": {
    field: "dataDir",
    type: "string",
    default: DEFAULT_DATA_DIR,
    env: DATA_DIR_ENV,
    help: "Fashion-MNIST IDX files (for --gallery-seed)",
  },
  "gallery-batch": {
    field: "galleryBatch",
    min: 1,
    env: "GALLERY_BATCH",
    type: "int",
    default: 32,
    help: "items per re-embedding batch after a hot swap",
  },
  "gallery-pause-ms": {
    field: "galleryPauseMs",
    min: 0,
    env: "GALLERY_PAUSE_MS",
    type: "int",
    default: 5,
    help:
      "least pause between re-embedding batches, ms (and at least the batch's own time, so re-embedding takes at most half the model's time)",
  },
  // A canary is judged against bounds an operator would page on, not against the primary: a
  // small share of traffic has too few requests for a fair two-sample comparison.
  "canary-max-error-rate": {
    field: "canaryMaxErrorRate",
    min: 0,
    max: 1,
    env: "CANARY_MAX_ERROR_RATE",
    type: "number",
    default: 0.02,
    help: "stop routing to a canary whose share of 5xx answers passes this (0..1)",
  },
  // Bounds are inclusive; a microsecond stands for "> 0" (a p99 bound of 0 would abort at once).
  "canary-max-p99-ms": {
    field: "canaryMaxP99Ms",
    min: 0.001,
    env: "CANARY_MAX_P99_MS",
    type: "number",
    default: 1000,
    help: "stop routing to a canary whose p99 latency (last 1000 requests) passes this, ms",
  },
  "canary-min-requests": {
    field: "canaryMinRequests",
    min: 1,
    env: "CANARY_MIN_REQUESTS",
    type: "int",
    default: 100,
    help: "canary requests seen before the bounds are applied",
  },
  "shadow-queue": {
    field: "shadowQueue",
    min: 1,
    env: "SHADOW_QUEUE",
    type: "int",
    default: 256,
    help: "most requests waiting for the shadow version; more are dropped and counted",
  },
} as const satisfies Record<string, ServeFlag>;
