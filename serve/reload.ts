/**
 * Hot swapping: the Reloader moves the service to the version its registry source names, or to
 * one an admin asks for, without dropping a request. Protocol: load the new bundle beside the
 * old one (loadModel validates manifest, sha256, graph IO names and shapes, probe set), warm it
 * up with a one-image run, switch atomically (ModelSlot.swap: new requests go to the new
 * model, in-flight ones finish on the old), then retire the old model (its sessions released,
 * its worker, if any, terminated). A bundle that fails any step is rejected: the old model keeps
 * serving, and the failure is kept as lastError, logged and counted. Reloads are serialised,
 * and requests arriving while one runs are coalesced into the latest, so a burst of publishes
 * loads at most one intermediate version. A version that failed is not retried on every change
 * event unless its files change or the reload is forced (admin). A bad state (the same target,
 * files and error) is counted, logged and timestamped once, however often polling meets it, so
 * model_reload_failures_total means "new problems", and the gauge model_reload_failing says
 * whether the registry is in a bad state right now.
 */
import { probeOf } from "../bundle/precision.ts";
import type { LoadedModel } from "./inference/model.ts";
import type { ModelSlot } from "./inference/slot.ts";
import type { ServiceMetrics } from "./metrics.ts";
import type { RegistrySource, VersionRef } from "./registry_source.ts";

export type ReloadRequest =
  | { kind: "follow"; reason: string; force?: boolean }
  | { kind: "activate"; version: string; reason: string };

export interface ReloadOutcome {
  status: "swapped" | "unchanged" | "failed";
  /** The version serving after this reload (null when none). */
  version: string | null;
  previous: string | null;
  /** The version that was tried, when one was. */
  target?: string;
  error?: string;
  /** "read-only" when an activation needs a writable registry; "not-found" for an unknown version. */
  errorKind?: "read-only" | "not-found" | "invalid";
  /** Wall time of this reload (read pointer, load, validate, warm up, switch), ms. */
  ms: number;
  /** True when this caller's request was merged into a later one (its outcome is the later one's). */
  superseded?: boolean;
}

export interface ReloadStatus {
  source: string;
  active: string | null;
  reloading: boolean;
  swaps: number;
  failures: number;
  lastSwap: { version: string; previous: string | null; time: string; ms: number } | null;
  lastError: { message: string; time: string; version: string | null } | null;
}

export interface ReloaderOptions {
  slot: ModelSlot;
  source: RegistrySource;
  /** Loads and validates a bundle directory (serve/inference loadModel with the server's backend). */
  load: (dir: string) => Promise<LoadedModel>;
  metrics?: ServiceMetrics;
  log?: (line: string) => void;
}

interface Queued {
  req: ReloadRequest;
  waiters: { resolve: (o: ReloadOutcome) => void; superseded: boolean }[];
}

/** What one reload has found so far: the failure path reports from it. */
interface Attempt {
  req: ReloadRequest;
  t0: number;
  /** The model serving when the reload began. */
  before: LoadedModel | null;
  target: VersionRef | null;
  /** The target's files when the reload read them (null until then). */
  fingerprint: string | null;
}

/** The outcome of a reload that leaves the serving model as it was. */
function kept(
  at: Attempt,
  target: VersionRef,
  status: "unchanged" | "failed",
  failure?: Pick<ReloadOutcome, "error" | "errorKind">,
): ReloadOutcome {
  const previous = at.before?.version ?? null;
  return {
    status,
    version: previous,
    previous,
    target: target.version,
    ...failure,
    ms: performance.now() - at.t0,
  };
}

class ReloadFailure extends Error {
  constructor(message: string, readonly kind: ReloadOutcome["errorKind"] = "invalid") {
    super(message);
  }
}

export class Reloader {
  readonly source: RegistrySource;
  #slot: ModelSlot;
  #load: (dir: string) => Promise<LoadedModel>;
  #metrics?: ServiceMetrics;
  #log: (line: string) => void;
  #pending: Queued | null = null;
  #running: Promise<void> | null = null;
  #swaps = 0;
  #failures = 0;
  #lastSwap: ReloadStatus["lastSwap"] = null;
  #lastError: ReloadStatus["lastError"] = null;
  /** The last version that failed and the fingerprint of its files then. */
  #failed: { key: string; fingerprint: string; message: string } | null = null;
  /** The bad state the last reload met (target, files, error), null once a reload succeeds. */
  #failState: string | null = null;

  constructor(opts: ReloaderOptions) {
    this.#slot = opts.slot;
    this.source = opts.source;
    this.#load = opts.load;
    this.#metrics = opts.metrics;
    this.#log = opts.log ?? ((l) => console.log(l));
    this.#metrics?.reloadFailing.set({}, 0);
  }

  /**
   * Queues a reload and resolves with its outcome. While one runs, later requests wait and
   * only the latest of them runs next; the others resolve with that one's outcome.
   */
  request(req: ReloadRequest): Promise<ReloadOutcome> {
    return new Promise((resolve) => {
      if (this.#pending) {
        for (const w of this.#pending.waiters) w.superseded = true;
        this.#pending.req = req;
        this.#pending.waiters.push({ resolve, superseded: false });
      } else {
        this.#pending = { req, waiters: [{ resolve, superseded: false }] };
      }
      this.#running ??= this.#drain();
    });
  }

  /** Resolves when no reload is running or queued. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  status(): ReloadStatus {
    return {
      source: this.source.description,
      active: this.#slot.current?.version ?? null,
      reloading: this.#running !== null,
      swaps: this.#swaps,
      failures: this.#failures,
      lastSwap: this.#lastSwap,
      lastError: this.#lastError,
    };
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending) {
        const q = this.#pending;
        this.#pending = null;
        const out = await this.#reloadOnce(q.req);
        for (const w of q.waiters) w.resolve(w.superseded ? { ...out, superseded: true } : out);
      }
    } finally {
      this.#running = null;
    }
  }

  /**
   * One reload through its states: find the target, stop if it already serves or already failed
   * with these files, load and check it, point CURRENT at it (activate), swap it in. Any failure
   * ends in #rejected with the old model still serving.
   */
  async #reloadOnce(req: ReloadRequest): Promise<ReloadOutcome> {
    const at: Attempt = {
      req,
      t0: performance.now(),
      before: this.#slot.current,
      target: null,
      fingerprint: null,
    };
    try {
      const target = await this.#targetOf(at);
      if (at.before?.name === target.name && at.before.version === target.version) {
        return await this.#unchanged(at, target);
      }
      // Taken before loading: if the files change while (or after) they fail, they are retried.
      at.fingerprint = await this.source.fingerprint(target);
      const known = this.#knownFailure(at, target);
      if (known) return known;
      const next = await this.#loadChecked(target);
      if (req.kind === "activate") await this.#pointCurrentAt(target, next);
      return await this.#swapIn(at, next);
    } catch (e) {
      return this.#rejected(at, e as Error);
    }
  }

  /** The version to move to: CURRENT when following, else the admin's, checked to exist. */
  async #targetOf(at: Attempt): Promise<VersionRef> {
    const { req, before } = at;
    if (req.kind === "follow") return at.target = await this.source.current();
    const name = before?.name ?? (await this.source.current()).name;
    at.target = { name, version: req.version };
    if (!this.source.activate) {
      throw new ReloadFailure(
        `Cannot activate ${name}@${req.version}: the ${this.source.kind} source ${this.source.description} is read-only (publish to the registry instead)`,
        "read-only",
      );
    }
    const known = await this.source.versions(name);
    if (!known.some((v) => v.version === req.version)) {
      throw new ReloadFailure(
        `Cannot activate ${name}@${req.version}: no such version in ${this.source.description} (known: ${
          known.map((v) => v.version).join(", ") || "none"
        })`,
        "not-found",
      );
    }
    return at.target;
  }

  /** The target serves already: nothing to load (an activation still keeps CURRENT in step). */
  async #unchanged(at: Attempt, target: VersionRef): Promise<ReloadOutcome> {
    if (at.req.kind === "activate") await this.source.activate!(target);
    this.#healthy();
    return kept(at, target, "unchanged");
  }

  /** The outcome of the last failure when these very files were rejected already (and no force). */
  #knownFailure(at: Attempt, target: VersionRef): ReloadOutcome | null {
    const force = at.req.kind === "activate" || at.req.force === true;
    const f = this.#failed;
    if (
      force || f?.key !== `${target.name}@${target.version}` || f.fingerprint !== at.fingerprint
    ) {
      return null;
    }
    // Already rejected with these very files; say so without loading it again.
    return kept(at, target, "failed", { error: f.message, errorKind: "invalid" });
  }

  /** Activation writes CURRENT before the switch; if it cannot, the loaded model is dropped. */
  async #pointCurrentAt(target: VersionRef, next: LoadedModel): Promise<void> {
    try {
      await this.source.activate!(target);
    } catch (e) {
      await next.close();
      throw new ReloadFailure(
        `Cannot point CURRENT at ${target.name}@${target.version}: ${(e as Error).message}`,
      );
    }
  }

  /** The switch to a loaded and checked model, then the old one's retirement. */
  async #swapIn(at: Attempt, next: LoadedModel): Promise<ReloadOutcome> {
    const previous = at.before?.version ?? null;
    const ms = performance.now() - at.t0;
    // The switch: one assignment inside swap(); it resolves once the old model has drained
    // and been released, which is awaited so at most two models are ever loaded at once.
    const retired = this.#slot.swap(next);
    this.#swaps++;
    this.#failed = null;
    this.#healthy();
    this.#lastSwap = {
      version: next.version,
      previous,
      time: new Date().toISOString(),
      ms: Math.round(ms),
    };
    this.#metrics?.swaps.inc({});
    this.#metrics?.swapSeconds.observe(ms / 1000);
    this.#log(
      `Model ${next.name} version ${next.version} loaded from ${this.source.description} in ${
        Math.round(ms)
      } ms (${next.precision} graph, sha256 verified, ${next.probe?.cases} probe images within ${
        probeOf(next.manifest, next.precision).tolerance
      }, max diff ${next.probe?.maxAbsDiff.toExponential(1)}); ${
        previous ? `replaced ${previous} (${at.req.reason})` : `now serving (${at.req.reason})`
      }`,
    );
    await retired;
    if (this.source.retain) {
      await this.source.retain(next.name, [next.version, ...(previous ? [previous] : [])])
        .catch(() => {});
    }
    return { status: "swapped", version: next.version, previous, target: next.version, ms };
  }

  /** A failed reload: the old model serves on; a new bad state is counted, kept and logged once. */
  #rejected(at: Attempt, e: Error): ReloadOutcome {
    const { req, target, before } = at;
    const message = e.message;
    const kind = e instanceof ReloadFailure ? e.kind : "invalid";
    const key = target ? `${target.name}@${target.version}` : "";
    if (target && kind === "invalid") {
      this.#failed = { key, fingerprint: at.fingerprint ?? "", message };
    }
    // An admin asking for an unknown version says nothing about the registry's state.
    if (req.kind === "follow" || kind === "invalid") this.#metrics?.reloadFailing.set({}, 1);
    if (!this.#slot.current) this.#slot.reason = message;
    const state = `${key}\n${at.fingerprint}\n${message}`;
    if (state !== this.#failState) {
      this.#failState = state;
      this.#failures++;
      this.#lastError = {
        message,
        time: new Date().toISOString(),
        version: target?.version ?? null,
      };
      this.#metrics?.reloadFailures.inc({});
      this.#metrics?.lastFailure.set({}, Date.now() / 1000);
      this.#log(
        `Rejected ${key || "reload"} (${req.reason}): ${message}; ${
          before ? `still serving ${before.version}` : "no model is being served"
        }`,
      );
    }
    return {
      status: "failed",
      version: this.#slot.current?.version ?? null,
      previous: before?.version ?? null,
      target: target?.version,
      error: message,
      errorKind: kind,
      ms: performance.now() - at.t0,
    };
  }

  /** The registry names what is serving (or what was just swapped in): no bad state now. */
  #healthy(): void {
    this.#failState = null;
    this.#metrics?.reloadFailing.set({}, 0);
  }

  /** Downloads (if remote), loads, validates and warms up `target`; closes it on any failure. */
  async #loadChecked(target: VersionRef): Promise<LoadedModel> {
    const dir = await this.source.localDir(target);
    const model = await this.#load(dir);
    try {
      if (model.name !== target.name || model.version !== target.version) {
        throw new ReloadFailure(
          `Bundle ${dir}: manifest names ${model.name}@${model.version}, the registry path says ${target.name}@${target.version}`,
        );
      }
      // Warm-up in the shape most requests have (one image), so the first real request after
      // the switch does not pay for first-run allocations.
      const probe = model.manifest.probe.cases[0];
      const px = Uint8Array.from(atob(probe.pixels), (c) => c.charCodeAt(0));
      await model.encode(Float32Array.from(px, (v) => v / 255), 1);
      return model;
    } catch (e) {
      await model.close();
      throw e;
    }
  }
}
