/**
 * GET /healthz (liveness, with pid and uptime so replicas sharing a port tell apart),
 * GET /readyz (a validated model is loaded) and GET /metrics (Prometheus text).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { errorBody } from "../errors.ts";
import { type Api, err, modelRef, type RouteDeps } from "./common.ts";
import { ModelRefSchema } from "./schemas.ts";

const healthRoute = createRoute({
  method: "get",
  path: "/healthz",
  summary: "Liveness: the process answers",
  responses: {
    200: {
      description: "ok",
      content: {
        "application/json": {
          schema: z.object({
            status: z.literal("ok"),
            pid: z.number().int().nullable(),
            uptimeSeconds: z.number().int(),
          }),
        },
      },
    },
  },
});

const readyRoute = createRoute({
  method: "get",
  path: "/readyz",
  summary: "Readiness: a validated model is loaded",
  responses: {
    200: {
      description: "ready",
      content: {
        "application/json": {
          schema: z.object({
            status: z.literal("ready"),
            model: ModelRefSchema,
            backend: z.string(),
          }),
        },
      },
    },
    503: err("No model; the message says why."),
  },
});

const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  summary: "Prometheus metrics",
  description:
    'Requests and latency per route; per graph: batch size, requests per run, queue wait, run time as the batcher sees it and time computing (inference_*); the active model and swaps. Under --replicas every replica\'s samples, each labelled replica="<pid>".' +
    " Novelty: novelty_percentile (histogram) and novelty_out_of_distribution_total, by model name and version.",
  responses: {
    200: {
      description: "Text exposition format 0.0.4",
      content: { "text/plain": { schema: z.string() } },
    },
  },
});

export function healthRoutes(app: Api, deps: RouteDeps, metricsText: () => Promise<string>): void {
  const started = performance.now();
  app.openapi(healthRoute, (c) =>
    c.json({
      status: "ok" as const,
      pid: (globalThis as { Deno?: { pid: number } }).Deno?.pid ?? null,
      uptimeSeconds: Math.round((performance.now() - started) / 1000),
    }, 200));

  app.openapi(readyRoute, (c) => {
    const m = deps.slot.current;
    if (!m) return c.json(errorBody("not_ready", `No model is loaded: ${deps.slot.reason}`), 503);
    return c.json({ status: "ready" as const, model: modelRef(m), backend: m.backend }, 200);
  });

  app.openapi(metricsRoute, async (c) =>
    c.text(await metricsText(), 200, {
      "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
    }));
}
