/**
 * The admin API, mounted under /v1/admin only when an admin token is configured:
 *   POST /v1/admin/reload                     re-read the registry now (forced: retries a version
 *                                             that failed before) and swap if CURRENT moved
 *   POST /v1/admin/models/{version}/activate  validate that version here, point CURRENT at it
 *                                             (so every replica follows), swap to it
 * Both wait for the reload and answer with its outcome. Every request needs
 * `Authorization: Bearer <token>`: 401 when missing, 403 when wrong. The comparison hashes both
 * sides and compares the digests in constant time, so neither the token's length nor a prefix
 * leaks through timing; the token itself is never logged or echoed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Hono, type MiddlewareHandler } from "hono";
import { ApiError } from "./errors.ts";
import type { Reloader, ReloadOutcome } from "./reload.ts";

export interface AdminOptions {
  token: string;
  reloader: Reloader;
}

function digest(s: string): Uint8Array {
  return createHash("sha256").update(s, "utf8").digest();
}

/** Constant-time equality of two secrets (of any lengths). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** Middleware admitting only `Authorization: Bearer <token>` (401 without, 403 wrong). */
export function bearerAuth(expected: string): MiddlewareHandler {
  return async (c, next) => {
    const auth = c.req.header("authorization");
    if (!auth) {
      c.header("WWW-Authenticate", 'Bearer realm="admin"');
      throw new ApiError(401, "unauthorized", "The admin API needs Authorization: Bearer <token>");
    }
    const m = auth.match(/^Bearer\s+(.+)$/i);
    if (!m || !sameSecret(m[1].trim(), expected)) {
      throw new ApiError(403, "forbidden", "The admin token is not valid");
    }
    await next();
  };
}

function outcomeStatus(o: ReloadOutcome): 200 | 404 | 409 | 422 {
  if (o.status !== "failed") return 200;
  if (o.errorKind === "not-found") return 404;
  if (o.errorKind === "read-only") return 409;
  return 422;
}

export function adminRoutes(opts: AdminOptions): Hono {
  if (!opts.token) throw new Error("adminRoutes() needs a non-empty token");
  const expected = opts.token;
  const app = new Hono();

  app.use("*", bearerAuth(expected));

  app.post("/reload", async (c) => {
    const o = await opts.reloader.request({
      kind: "follow",
      force: true,
      reason: "POST /v1/admin/reload",
    });
    return c.json({ ...o, ms: Math.round(o.ms) }, outcomeStatus(o));
  });

  app.post("/models/:version/activate", async (c) => {
    const version = c.req.param("version");
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(version)) {
      throw new ApiError(
        400,
        "bad_version",
        `Version ${JSON.stringify(version)} is not a version id`,
      );
    }
    const o = await opts.reloader.request({
      kind: "activate",
      version,
      reason: `POST /v1/admin/models/${version}/activate`,
    });
    return c.json({ ...o, ms: Math.round(o.ms) }, outcomeStatus(o));
  });

  return app;
}
