/**
 * Throttling of wrong admin tokens, per client address: a token bucket of `burst` failures
 * that refills one failure every `refillMs`. While a client's bucket is empty, every admin
 * request from it gets 429 with Retry-After (a right token included, or guessing would just
 * continue at the refill rate with no penalty), so guessing runs at most one try per refillMs
 * instead of thousands per second. Every counted failure is logged with its address and count
 * (at most one line per refillMs per address once throttled) and the start of throttling is
 * logged once; the token itself never is. Clock and log are injectable for tests.
 */

export interface ThrottleOptions {
  /** Failures allowed back to back before throttling starts (default 5). */
  burst?: number;
  /** One more failure is allowed every this many ms (default 1000). */
  refillMs?: number;
  /** Most addresses tracked; the least recently seen are forgotten first (default 10,000). */
  maxClients?: number;
  log?: (line: string) => void;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
  failures: number;
  throttled: boolean;
}

export class FailureThrottle {
  readonly burst: number;
  readonly refillMs: number;
  #maxClients: number;
  #log: (line: string) => void;
  #now: () => number;
  #buckets = new Map<string, Bucket>();

  constructor(opts: ThrottleOptions = {}) {
    this.burst = opts.burst ?? 5;
    this.refillMs = opts.refillMs ?? 1000;
    this.#maxClients = opts.maxClients ?? 10_000;
    this.#log = opts.log ?? ((l) => console.error(l));
    this.#now = opts.now ?? (() => Date.now());
  }

  #bucket(client: string): Bucket {
    const now = this.#now();
    let b = this.#buckets.get(client);
    if (b) {
      this.#buckets.delete(client); // re-inserted below: Map order is recency
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) / this.refillMs);
      b.at = now;
    } else {
      b = { tokens: this.burst, at: now, failures: 0, throttled: false };
      if (this.#buckets.size >= this.#maxClients) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
    }
    this.#buckets.set(client, b);
    return b;
  }

  /** Milliseconds until `client` may try again; 0 when it may now. */
  retryAfterMs(client: string): number {
    const b = this.#bucket(client);
    if (b.tokens >= 1) {
      b.throttled = false;
      return 0;
    }
    return Math.ceil((1 - b.tokens) * this.refillMs);
  }

  /** Records a wrong or missing token from `client`. */
  fail(client: string, what: string): void {
    const b = this.#bucket(client);
    b.tokens = Math.max(0, b.tokens - 1);
    b.failures++;
    this.#log(`Admin API: ${what} from ${client} (${b.failures} failed attempts so far)`);
    if (b.tokens < 1 && !b.throttled) {
      b.throttled = true;
      this.#log(
        `Admin API: throttling ${client} after ${b.failures} failed attempts: 429 until one try per ${this.refillMs} ms`,
      );
    }
  }
}
