/**
 * The service's one error type and its JSON shape. Handlers throw ApiError (a Hono
 * HTTPException carrying a stable machine-readable code); app.ts's single onError turns it
 * into `{"error": {"code", "message"}}`. Anything else thrown is a bug and becomes a logged 500.
 */
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export class ApiError extends HTTPException {
  constructor(status: ContentfulStatusCode, readonly code: string, message: string) {
    super(status, { message });
    this.name = "ApiError";
  }
}

export interface ErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}
