/**
 * GET /v1/models: the active bundle's manifest summary, the registry's versions and, with hot
 * swapping, the reloader's state (the last rejected bundle stays visible here); with canary or
 * shadow traffic, their state too.
 */
import { createRoute } from "@hono/zod-openapi";
import { listVersions, type VersionInfo } from "../../registry/registry.ts";
import { ApiError } from "../errors.ts";
import type { LoadedModel } from "../inference/mod.ts";
import { noveltyInfo, noveltyJudge } from "../novelty.ts";
import { evaluationInfo } from "../evaluation_info.ts";
import type { Reloader } from "../reload.ts";
import type { Traffic } from "../traffic/traffic.ts";
import { spaceOf } from "../latents/routes.ts";
import { type Api, err, type RouteDeps, setModelHeaders } from "./common.ts";
import { ModelsResponseSchema } from "./schemas.ts";

const modelsRoute = createRoute({
  method: "get",
  path: "/v1/models",
  summary: "The active model and the versions available",
  responses: {
    200: {
      description: "Manifest summary of the active bundle and the registry's versions",
      content: { "application/json": { schema: ModelsResponseSchema } },
    },
    503: err("No validated model is loaded."),
  },
});

/** Hot-swap state for /v1/models. */
function reloadInfo(r: Reloader) {
  const s = r.status();
  return {
    lastError: s.lastError,
    reload: {
      source: s.source,
      reloading: s.reloading,
      swaps: s.swaps,
      failures: s.failures,
      lastSwap: s.lastSwap,
    },
  };
}

type Listed = { version: string; active: boolean; hasManifest: boolean };

async function versionsOf(deps: RouteDeps, reloader: Reloader | undefined, m: LoadedModel) {
  if (deps.config.bundle !== undefined) {
    return {
      source: "bundle" as const,
      versions: [{ version: m.version, active: true, hasManifest: true }],
    };
  }
  let versions: VersionInfo[] | Listed[];
  try {
    versions = reloader
      ? await reloader.source.versions(m.name) as typeof versions
      : await listVersions(deps.config.registry, m.name);
  } catch {
    versions = []; // the registry may have moved since loading; the active model still serves
  }
  return { source: "registry" as const, versions: versions as Listed[] };
}

async function activeOf(deps: RouteDeps, m: LoadedModel) {
  const mf = m.manifest;
  return {
    name: m.name,
    version: m.version,
    created: mf.created,
    backend: m.backend,
    precision: m.precision,
    latentSize: m.latentSize,
    latentSpace: spaceOf(m),
    labels: [...m.labels],
    dataset: typeof mf.data.dataset === "string" ? mf.data.dataset : null,
    decoder: m.hasDecoder,
    metrics: mf.metrics,
    probe: m.probe,
    novelty: noveltyInfo(noveltyJudge(m, deps.config.noveltyPercentile)),
    evaluation: await evaluationInfo(m),
  };
}

export function modelRoutes(
  app: Api,
  deps: RouteDeps,
  reloader?: Reloader,
  traffic?: Traffic,
): void {
  app.openapi(modelsRoute, async (c) => {
    const m = deps.slot.current;
    if (!m) throw new ApiError(503, "not_ready", `No model is loaded: ${deps.slot.reason}`);
    const { source, versions } = await versionsOf(deps, reloader, m);
    setModelHeaders(c, m);
    return c.json({
      active: await activeOf(deps, m),
      source,
      versions: versions.map((v) => ({
        version: v.version,
        active: v.active,
        hasManifest: v.hasManifest,
      })),
      ...(reloader ? reloadInfo(reloader) : {}),
      ...(traffic ? { traffic: traffic.status() } : {}),
    }, 200);
  });
}
