/**
 * Sticky canary routing: a client key (the X-Request-Key header) hashes to a fixed bucket in
 * [0, 100), and a request goes to the canary when its bucket is below the canary's percent. The
 * hash (32-bit FNV-1a, then a murmur3 finaliser so similar keys spread evenly) is the same in
 * every replica and across restarts, so a key always reaches the same version while the percent
 * holds, and raising the percent only moves keys from the primary to the canary, never back.
 * Requests without a key get a random bucket each.
 */

export const REQUEST_KEY_HEADER = "X-Request-Key";

/** The key's bucket in [0, 100), in steps of 0.01 (so fractional percents work). */
export function bucketOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return ((h >>> 0) % 10_000) / 100;
}

/** Whether a request with `key` (or none) goes to a canary taking `percent` of traffic. */
export function toCanary(key: string | null | undefined, percent: number): boolean {
  const bucket = key ? bucketOf(key) : Math.floor(Math.random() * 10_000) / 100;
  return bucket < percent;
}
