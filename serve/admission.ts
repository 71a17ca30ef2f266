/**
 * Which requests the service takes on, as Hono middleware: it counts the requests in flight,
 * refuses new ones with 503 beyond a cap (so a flood queues nowhere), and drives a graceful
 * shutdown. Deno's server.shutdown() breaks the body reads of requests still in flight (their
 * handlers see "BadResource"), so on SIGTERM the service first drains here: new requests get
 * 503 with `Connection: close` and /readyz reports not-ready, requests already in flight run to
 * their end, and only then (or when the grace period is over) are the connections closed.
 */
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors.ts";

export interface AdmissionOptions {
  /** Most requests in flight at once; 0: no cap. */
  maxInflight?: number;
}

export interface DrainResult {
  /** Requests still running when the drain ended (0 unless the grace period ran out). */
  left: number;
  ms: number;
}

export class Admission {
  #inflight = 0;
  #draining = false;
  #idle: (() => void) | null = null;
  readonly maxInflight: number;

  constructor(opts: AdmissionOptions = {}) {
    this.maxInflight = opts.maxInflight ?? 0;
  }

  get inflight(): number {
    return this.#inflight;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Counts requests; refuses them while draining or above the cap. */
  middleware(): MiddlewareHandler {
    return async (c, next) => {
      if (this.#draining) {
        c.header("Connection", "close");
        throw new ApiError(503, "shutting_down", "The server is shutting down; retry elsewhere");
      }
      if (this.maxInflight > 0 && this.#inflight >= this.maxInflight) {
        c.header("Retry-After", "1");
        throw new ApiError(
          503,
          "overloaded",
          `The server is handling ${this.#inflight} requests, its limit; retry shortly`,
        );
      }
      this.#inflight++;
      try {
        await next();
      } finally {
        if (--this.#inflight === 0) this.#idle?.();
      }
    };
  }

  /**
   * Stops admitting requests and resolves once those in flight have finished, or after
   * `graceMs` with the number still running.
   */
  async drain(graceMs: number): Promise<DrainResult> {
    this.#draining = true;
    const t0 = performance.now();
    if (this.#inflight > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((r) => (this.#idle = r)),
        new Promise<void>((r) => (timer = setTimeout(r, graceMs))),
      ]);
      clearTimeout(timer);
    }
    return { left: this.#inflight, ms: performance.now() - t0 };
  }
}
