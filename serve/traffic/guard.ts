/**
 * The canary's automatic abort: counts the canary's requests and errors (5xx) and keeps its
 * latest latencies, and once it has seen `minRequests` requests it trips when the error rate or
 * the p99 latency passes its bound. Judged over a sliding window of the last `window`
 * requests, so an early burst of errors is not averaged away by a long good run, nor a short
 * hiccup remembered forever. A tripped guard stays tripped until the canary changes.
 */

export interface GuardBounds {
  /** Largest share of canary requests answered with a 5xx, in [0, 1]. */
  maxErrorRate: number;
  /** Largest p99 of canary request latency, ms. */
  maxP99Ms: number;
  /** Requests seen before the canary is judged (fewer say nothing about a p99). */
  minRequests: number;
  /** Requests the rate and p99 are computed over (default 1000). */
  window?: number;
}

export class CanaryGuard {
  readonly #bounds: Required<GuardBounds>;
  readonly #ms: Float64Array;
  readonly #err: Uint8Array;
  #n = 0;
  #errors = 0;
  #tripped: string | null = null;

  constructor(bounds: GuardBounds) {
    this.#bounds = { window: 1000, ...bounds };
    this.#ms = new Float64Array(this.#bounds.window);
    this.#err = new Uint8Array(this.#bounds.window);
  }

  /** Why the canary must stop, once a bound was passed; null while it is within bounds. */
  get tripped(): string | null {
    return this.#tripped;
  }

  /** Records one canary request; returns the reason when this request tripped the guard. */
  observe(ms: number, error: boolean): string | null {
    const w = this.#bounds.window;
    const i = this.#n % w;
    if (this.#n >= w) this.#errors -= this.#err[i];
    this.#ms[i] = ms;
    this.#err[i] = error ? 1 : 0;
    this.#errors += this.#err[i];
    this.#n++;
    if (this.#tripped !== null || this.#n < this.#bounds.minRequests) return null;
    const seen = Math.min(this.#n, w);
    const rate = this.#errors / seen;
    if (rate > this.#bounds.maxErrorRate) {
      return this.#tripped = `error rate ${(rate * 100).toFixed(1)}% over the last ${seen} ` +
        `canary requests passed the bound of ${(this.#bounds.maxErrorRate * 100).toFixed(1)}%`;
    }
    // The p99 is checked every 16 requests: sorting the window on each would cost more than
    // the request; a bound passed is still noticed within 16 requests.
    if (this.#n % 16 === 0 || this.#n === this.#bounds.minRequests) {
      const p99 = this.p99();
      if (p99 > this.#bounds.maxP99Ms) {
        return this.#tripped = `p99 latency ${p99.toFixed(1)} ms over the last ${seen} ` +
          `canary requests passed the bound of ${this.#bounds.maxP99Ms} ms`;
      }
    }
    return null;
  }

  /** The p99 latency (ms) of the window; 0 before any request. */
  p99(): number {
    const seen = Math.min(this.#n, this.#bounds.window);
    if (seen === 0) return 0;
    const sorted = this.#ms.slice(0, seen).sort();
    return sorted[Math.min(seen - 1, Math.ceil(seen * 0.99) - 1)];
  }

  /** Requests and errors in the window, for /v1/models. */
  summary(): { requests: number; errors: number; p99Ms: number } {
    return { requests: this.#n, errors: this.#errors, p99Ms: Math.round(this.p99() * 100) / 100 };
  }
}
