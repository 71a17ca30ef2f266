/**
 * The edge profile's settings, from the environment only (`deno serve` and Deno Deploy pass no
 * argv): where the model comes from (an HTTP(S) registry, a read-only bundle directory, or by
 * default the registry directory committed beside the code), how often to poll it, and the
 * service's limits (the server's defaults). Unknown LATENT_EDGE_* variables are errors.
 */
import { defaultConfig, type ServeConfig } from "../config.ts";

export interface EdgeConfig {
  source:
    | { kind: "http"; url: string; model: string }
    | { kind: "bundle"; dir: string }
    | { kind: "dir"; dir: string; model?: string };
  pollMs: number;
  serve: ServeConfig;
}

const KNOWN = [
  "LATENT_EDGE_REGISTRY",
  "LATENT_EDGE_MODEL",
  "LATENT_EDGE_BUNDLE",
  "LATENT_EDGE_POLL_MS",
  "LATENT_EDGE_MAX_BATCH",
];

export const EDGE_HELP = `Environment of serve/edge.ts:
  LATENT_EDGE_REGISTRY   http(s):// registry to follow (downloaded and verified in memory)
  LATENT_EDGE_MODEL      model name in it (default fashion-vae)
  LATENT_EDGE_BUNDLE     or: a read-only bundle directory to serve as is
  LATENT_EDGE_POLL_MS    how often to re-read the registry's CURRENT, ms (default 5000; 0: never)
  LATENT_EDGE_MAX_BATCH  most images per request and per run (default 256)
Without REGISTRY or BUNDLE it serves the registry directory models/ beside the code.`;

function int(env: Record<string, string | undefined>, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === "") return fallback;
  if (!/^\d+$/.test(raw)) {
    throw new Error(
      `${key} must be a non-negative integer, got ${JSON.stringify(raw)}\n${EDGE_HELP}`,
    );
  }
  return Number(raw);
}

export function edgeConfig(env: Record<string, string | undefined>, codeRoot: URL): EdgeConfig {
  const unknown = Object.keys(env).filter((k) =>
    k.startsWith("LATENT_EDGE_") && !KNOWN.includes(k)
  );
  if (unknown.length) throw new Error(`Unknown setting(s) ${unknown.join(", ")}\n${EDGE_HELP}`);
  const registry = env.LATENT_EDGE_REGISTRY, bundle = env.LATENT_EDGE_BUNDLE;
  if (registry && bundle) {
    throw new Error(`Set LATENT_EDGE_REGISTRY or LATENT_EDGE_BUNDLE, not both\n${EDGE_HELP}`);
  }
  if (registry && !/^https?:\/\//i.test(registry)) {
    throw new Error(
      `LATENT_EDGE_REGISTRY must be an http(s):// URL, got ${
        JSON.stringify(registry)
      }\n${EDGE_HELP}`,
    );
  }
  const maxBatch = int(env, "LATENT_EDGE_MAX_BATCH", 256);
  if (maxBatch < 1) throw new Error(`LATENT_EDGE_MAX_BATCH must be >= 1\n${EDGE_HELP}`);
  const source: EdgeConfig["source"] = registry
    ? { kind: "http", url: registry, model: env.LATENT_EDGE_MODEL || "fashion-vae" }
    : bundle
    ? { kind: "bundle", dir: bundle }
    : { kind: "dir", dir: new URL("models/", codeRoot).pathname, model: env.LATENT_EDGE_MODEL };
  return {
    source,
    pollMs: int(env, "LATENT_EDGE_POLL_MS", 5000),
    serve: defaultConfig({
      maxBatch,
      bundle: source.kind === "bundle" ? source.dir : undefined,
      registry: source.kind === "http" ? source.url : source.kind === "dir" ? source.dir : "models",
      backend: "wasm",
      threads: 1,
      workers: 1,
    }),
  };
}
