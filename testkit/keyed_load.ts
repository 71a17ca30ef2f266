/**
 * Keyed load on a real server for the canary tests and bench: `concurrency` loops POST one
 * 28x28 image each to /v1/classify with X-Request-Key, and record which version answered each
 * request (header and body must agree), its latency, and every failure (network errors, 5xx,
 * any other non-200) so a test can demand zero of them.
 */
export interface KeyedLoadResult {
  /** The version that answered request i (null when it failed). */
  versions: (string | null)[];
  latenciesMs: number[];
  failures: number;
  status5xx: number;
  /** The first few failures, for the assertion message. */
  errors: string[];
  seconds: number;
}

export async function keyedLoad(opts: {
  url: string;
  requests: number;
  /** The key of request i (null: none). */
  key: (i: number) => string | null;
  image: (i: number) => Uint8Array;
  concurrency: number;
  /** Called once per request as it starts (e.g. to promote at request 1000). */
  onStart?: (i: number) => void;
}): Promise<KeyedLoadResult> {
  const r: KeyedLoadResult = {
    versions: new Array(opts.requests).fill(null),
    latenciesMs: [],
    failures: 0,
    status5xx: 0,
    errors: [],
    seconds: 0,
  };
  const fail = (why: string) => {
    r.failures++;
    if (r.errors.length < 5) r.errors.push(why);
  };
  let next = 0;
  const t0 = performance.now();
  const loop = async () => {
    for (let i = next++; i < opts.requests; i = next++) {
      opts.onStart?.(i);
      const k = opts.key(i);
      const t = performance.now();
      try {
        const res = await fetch(`${opts.url}/v1/classify`, {
          method: "POST",
          headers: {
            "Content-Type": "application/octet-stream",
            ...(k === null ? {} : { "X-Request-Key": k }),
          },
          body: opts.image(i) as Uint8Array<ArrayBuffer>,
        });
        const text = await res.text();
        if (res.status >= 500) r.status5xx++;
        if (res.status !== 200) {
          fail(`request ${i}: HTTP ${res.status} ${text.slice(0, 200)}`);
          continue;
        }
        const version = res.headers.get("x-model-version");
        if (JSON.parse(text).model.version !== version) fail(`request ${i}: header/body differ`);
        r.versions[i] = version;
        r.latenciesMs.push(performance.now() - t);
      } catch (e) {
        fail(`request ${i}: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  r.seconds = (performance.now() - t0) / 1000;
  return r;
}

/** The q-quantile (0..1) of `values`, ms. */
export function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil(s.length * q) - 1)] : NaN;
}
