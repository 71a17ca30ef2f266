/**
 * The admin API, mounted under /v1/admin only when an admin token is configured:
 *   POST /v1/admin/reload                     re-read the registry now (forced: retries a version
 *                                             that failed before) and swap if CURRENT moved
 *   POST /v1/admin/models/{version}/activate  validate that version here, point CURRENT at it
 *                                             (so every replica follows), swap to it
 * Both wait for the reload and answer with its outcome; a failed one is an error in the app's
 * one shape, {"error": {code, message}} (404 unknown version, 409 read-only registry, 422
 * rejected bundle). Every request needs `Authorization: Bearer <token>`: 401 when missing, 403
 * when wrong, 429 while the client is throttled for wrong tokens (serve/auth_throttle.ts). The
 * comparison hashes both sides and compares the digests in constant time, so neither the
 * token's length nor a prefix leaks through timing; the token itself is never logged or echoed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import { FailureThrottle } from "./auth_throttle.ts";
import { ApiError } from "./errors.ts";
import type { Reloader, ReloadOutcome } from "./reload.ts";
import { VERSION_ID } from "../bundle/mod.ts";

export interface AdminOptions {
  token: string;
  reloader: Reloader;
  /** Wrong-token throttling; default: 5 back to back, then one per second per address. */
  throttle?: FailureThrottle;
}

/** The client's address when served by Deno.serve (its info is Hono's env); else "local". */
function clientOf(c: Context): string {
  const info = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  return info?.remoteAddr?.hostname ?? "local";
}

function digest(s: string): Uint8Array {
  return createHash("sha256").update(s, "utf8").digest();
}

/** Constant-time equality of two secrets (of any lengths). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * Middleware admitting only `Authorization: Bearer <token>`: 401 without, 403 wrong (counted by
 * `throttle`), 429 while the client is throttled. Every admin route group mounts it.
 */
export function bearerAuth(expected: string, throttle = new FailureThrottle()): MiddlewareHandler {
  return async (c, next) => {
    const client = clientOf(c);
    const wait = throttle.retryAfterMs(client);
    if (wait > 0) {
      c.header("Retry-After", String(Math.ceil(wait / 1000)));
      throw new ApiError(
        429,
        "too_many_attempts",
        `Too many wrong admin tokens from ${client}; retry in ${wait} ms`,
      );
    }
    const auth = c.req.header("authorization");
    if (!auth) {
      c.header("WWW-Authenticate", 'Bearer realm="admin"');
      throw new ApiError(401, "unauthorized", "The admin API needs Authorization: Bearer <token>");
    }
    const m = auth.match(/^Bearer\s+(.+)$/i);
    if (!m || !sameSecret(m[1].trim(), expected)) {
      throttle.fail(client, `wrong admin token on ${c.req.method} ${c.req.path}`);
      throw new ApiError(403, "forbidden", "The admin token is not valid");
    }
    await next();
  };
}

/** A reload's outcome as the response: 200 with it, or an ApiError for a failed one. */
function answer(c: Context, o: ReloadOutcome): Response {
  if (o.status === "failed") {
    const message = o.error ?? "the reload failed";
    if (o.errorKind === "not-found") throw new ApiError(404, "unknown_version", message);
    if (o.errorKind === "read-only") throw new ApiError(409, "read_only_registry", message);
    throw new ApiError(422, "bundle_rejected", message);
  }
  return c.json({ ...o, ms: Math.round(o.ms) });
}

export function adminRoutes(opts: AdminOptions): Hono {
  if (!opts.token) throw new Error("adminRoutes() needs a non-empty token");
  const expected = opts.token;
  const throttle = opts.throttle ?? new FailureThrottle();
  const app = new Hono();

  app.use("*", bearerAuth(expected, throttle));

  app.post("/reload", async (c) => {
    const o = await opts.reloader.request({
      kind: "follow",
      force: true,
      reason: "POST /v1/admin/reload",
    });
    return answer(c, o);
  });

  app.post("/models/:version/activate", async (c) => {
    const version = c.req.param("version");
    if (!VERSION_ID.test(version)) {
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
    return answer(c, o);
  });

  return app;
}
