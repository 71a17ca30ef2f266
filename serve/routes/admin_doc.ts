/**
 * The OpenAPI entries of the admin API (serve/admin.ts). They are registered always, because
 * the document says how to enable the API even when this server has no token and so no routes.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { type Api, err } from "./common.ts";

/** What every admin route answers to a missing, wrong or throttled token. */
export const denied = {
  401: err("No bearer token."),
  403: err("Wrong token."),
  429: err("Too many wrong tokens from this client; see Retry-After."),
};
const outcome = (description: string) => ({
  description,
  content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
});

const reloadRoute = createRoute({
  method: "post",
  path: "/v1/admin/reload",
  summary: "Re-read the registry and hot-swap to its CURRENT version (admin token needed)",
  description:
    "Enabled only when the server has an admin token (ADMIN_TOKEN or --admin-token-file); " +
    "requires `Authorization: Bearer <token>`. The new bundle is validated beside the " +
    "old one; a bad bundle is rejected and the old one keeps serving.",
  responses: {
    200: outcome("Reload status: active version, last error"),
    ...denied,
    404: err("The admin API is disabled (no token configured)."),
    422: err("The new bundle failed validation; the active one keeps serving."),
  },
});

const activateRoute = createRoute({
  method: "post",
  path: "/v1/admin/models/{version}/activate",
  summary: "Validate a registry version, then make it CURRENT and serve it (admin token needed)",
  request: { params: z.object({ version: z.string() }) },
  responses: {
    200: outcome("Activated"),
    400: err("Not a version id."),
    ...denied,
    404: err("No such version, or the admin API is disabled."),
    409: err("The registry is read-only (an HTTP registry): activate on the publisher."),
    422: err("The version failed validation; the active one keeps serving."),
  },
});

export function documentAdmin(app: Api): void {
  app.openAPIRegistry.registerPath(reloadRoute);
  app.openAPIRegistry.registerPath(activateRoute);
}
