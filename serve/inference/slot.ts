/**
 * The serving slot: which LoadedModel answers new requests. A request pins the model it
 * started on (use()), so swap() can put a new model in place atomically (one assignment, no
 * await between reading and pinning) while requests already running finish on the old one,
 * which is released once they are done. This is the seam the hot-swap work builds on.
 */
import type { LoadedModel } from "./model.ts";

export class NoModelError extends Error {
  constructor(reason: string) {
    super(`No model is loaded: ${reason}`);
    this.name = "NoModelError";
  }
}

export class ModelSlot {
  #current: LoadedModel | null;
  /** Why the slot is empty (shown by /readyz and on 503s). */
  reason: string;

  constructor(initial: LoadedModel | null = null, reason = "no model has been loaded yet") {
    this.#current = initial;
    this.reason = reason;
  }

  get current(): LoadedModel | null {
    return this.#current;
  }

  /** Runs fn with the current model pinned; throws NoModelError when the slot is empty. */
  async use<T>(fn: (model: LoadedModel) => Promise<T>): Promise<T> {
    const model = this.#current;
    if (!model) throw new NoModelError(this.reason);
    const release = model.acquire();
    try {
      return await fn(model);
    } finally {
      release();
    }
  }

  /**
   * Makes `next` the model for new requests and returns once the previous one has drained and
   * been released. Passing null empties the slot (with `reason`).
   */
  async swap(next: LoadedModel | null, reason = "the model was unloaded"): Promise<void> {
    const old = this.#current;
    this.#current = next;
    if (!next) this.reason = reason;
    if (old && old !== next) await old.close();
  }

  /** Empties the slot and releases the model once idle (for shutdown). */
  close(): Promise<void> {
    return this.swap(null, "the server is shutting down");
  }
}
