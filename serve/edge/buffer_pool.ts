/**
 * The buffers the edge downloads a version's files into, reused from version to version. A
 * downloaded graph is garbage once its session has copied it into the wasm heap, and V8 frees
 * such ArrayBuffers only at a full collection, which it puts off until tens of MB of them have
 * piled up (and glibc then keeps much of the freed memory): with the buffers reused, a swap
 * leaves almost nothing behind (docs/edge.md has the numbers). The pool holds the last
 * version's buffers only, about one bundle's files.
 */
export class BufferPool {
  #free: Uint8Array[] = [];

  /** `bytes` bytes: a view of the smallest free buffer that holds them, else a new buffer. */
  take(bytes: number): Uint8Array {
    let best = -1;
    this.#free.forEach((b, i) => {
      if (b.length >= bytes && (best < 0 || b.length < this.#free[best].length)) best = i;
    });
    if (best < 0) return new Uint8Array(bytes);
    return this.#free.splice(best, 1)[0].subarray(0, bytes);
  }

  /**
   * Hands back the views take() gave, once nothing reads them any more; they replace what was
   * free before, so the pool never holds more than the last version's files.
   */
  give(views: Iterable<Uint8Array>): void {
    this.#free = [...views].map((v) => new Uint8Array(v.buffer));
  }

  /** Bytes the pool holds for reuse. */
  get bytes(): number {
    return this.#free.reduce((sum, b) => sum + b.length, 0);
  }
}
