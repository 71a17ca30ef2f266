/**
 * V2's error shape, `{"error": "<message>"}`, and its status codes: 400 for a request the
 * server cannot use, 404 for an unknown model or version, 503 while no model is ready, 413
 * for a body above the limit. Errors from the shared /v1 input code (ApiError, with its own
 * codes) are mapped here so one V2 error handler covers both.
 */
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ApiError } from "../errors.ts";
import { NoModelError } from "../inference/slot.ts";

export class V2Error extends Error {
  constructor(readonly status: 400 | 404 | 413 | 503, message: string) {
    super(message);
    this.name = "V2Error";
  }
}

/** A bad request: `field` is where in the request, `reason` what is wrong with it. */
export function badRequest(field: string, reason: string): V2Error {
  return new V2Error(400, `${field}: ${reason}`);
}

/** The status and message for anything a V2 handler threw; null for a bug (a 500). */
export function v2Failure(e: unknown): { status: ContentfulStatusCode; message: string } | null {
  if (e instanceof V2Error) return { status: e.status, message: e.message };
  if (e instanceof NoModelError) return { status: 503, message: e.message };
  if (e instanceof ApiError) {
    // Size limits keep HTTP's own status; every other client error is the spec's 400.
    const status = e.status === 413 || e.status === 503 ? e.status : 400;
    return { status, message: e.message };
  }
  return null;
}
