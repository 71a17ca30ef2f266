/**
 * Canary and shadow traffic for one server: which model answers a request (the primary slot,
 * or the canary's for the share of client keys its CANARY record names), and the copy of
 * answered requests that the shadow version runs afterwards. Every replica follows the
 * registry's CANARY and SHADOW records (registry/traffic.ts) on the same polls and file events
 * as CURRENT, loading the named versions through their own Reloader, so a canary or shadow
 * passes the same acceptance check as any swap and a bad one leaves the primary untouched.
 * Handlers pin a model through use() (in place of ModelSlot.use); the middleware reads the
 * client key and records what answered, which feeds the per-version metrics and the canary's
 * automatic abort (guard.ts): past a bound this server stops routing to the canary at once and
 * says why (metrics, /v1/models), and `recordAbort` writes the abort into the registry when
 * the server may (a writable directory registry); read-only registries need `publish abort`.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { argmax } from "../../common/argmax.ts";
import type { MiddlewareHandler } from "hono";
import type { CanaryRecord, ShadowRecord, TrafficRecords } from "../../registry/traffic.ts";
import type { EncodeOutput, LoadedModel } from "../inference/model.ts";
import { ModelSlot } from "../inference/slot.ts";
import type { ServiceMetrics } from "../metrics.ts";
import type { RegistrySource, VersionRef } from "../registry_source.ts";
import { Reloader, type ReloadStatus } from "../reload.ts";
import { CanaryGuard, type GuardBounds } from "./guard.ts";
import { TrafficMetrics } from "./metrics.ts";
import { REQUEST_KEY_HEADER, toCanary } from "./route.ts";
import { ShadowRunner } from "./shadow.ts";

export type Role = "primary" | "canary";

export interface TrafficOptions {
  primary: ModelSlot;
  /** The registry the primary follows; without `traffic()` it has no records to follow. */
  source: RegistrySource;
  load: (dir: string) => Promise<LoadedModel>;
  bounds: GuardBounds;
  /** Most requests waiting for the shadow (more are dropped and counted). */
  shadowQueue?: number;
  metrics?: ServiceMetrics;
  log?: (line: string) => void;
  /** Writes an automatic abort into the registry (writable registries only). */
  recordAbort?: (name: string, reason: string) => Promise<void>;
}

interface RequestState {
  key: string | null;
  version?: string;
  role?: Role;
}

/** A registry source that names one fixed version (the canary's or shadow's) as current. */
function pinnedSource(source: RegistrySource, what: string, pick: () => string | null) {
  return {
    kind: source.kind,
    description: `${source.description} (${what})`,
    current: (): Promise<VersionRef> => {
      const version = pick();
      return version === null
        ? Promise.reject(new Error(`no ${what} version is named`))
        : source.current().then((c) => ({ name: c.name, version }));
    },
    localDir: (r: VersionRef) => source.localDir(r),
    fingerprint: (r: VersionRef) => source.fingerprint(r),
    versions: (n: string) => source.versions(n),
  } satisfies RegistrySource;
}

export class Traffic {
  readonly primary: ModelSlot;
  readonly canarySlot = new ModelSlot(null, "no canary is running");
  readonly shadowSlot = new ModelSlot(null, "no shadow is running");
  readonly metrics: TrafficMetrics;
  readonly shadow: ShadowRunner;
  #source: RegistrySource;
  #canaryLoader: Reloader;
  #shadowLoader: Reloader;
  #bounds: GuardBounds;
  #log: (line: string) => void;
  #recordAbort?: (name: string, reason: string) => Promise<void>;
  #canary: CanaryRecord | null = null;
  #shadowRecord: ShadowRecord | null = null;
  #guard: CanaryGuard | null = null;
  #stopped: string | null = null;
  #recordError: string | null = null;
  #chain: Promise<void> = Promise.resolve();
  #als = new AsyncLocalStorage<RequestState>();
  #taps = new WeakMap<LoadedModel, LoadedModel>();

  constructor(opts: TrafficOptions) {
    this.primary = opts.primary;
    this.#source = opts.source;
    this.#bounds = opts.bounds;
    this.#log = opts.log ?? ((l) => console.log(l));
    this.#recordAbort = opts.recordAbort;
    this.metrics = new TrafficMetrics(opts.metrics);
    this.shadow = new ShadowRunner(this.shadowSlot, this.metrics, opts.shadowQueue ?? 256);
    const loader = (slot: ModelSlot, what: string, pick: () => string | null) =>
      new Reloader({
        slot,
        source: pinnedSource(opts.source, what, pick),
        load: opts.load,
        log: (l) => this.#log(`${what}: ${l}`),
      });
    this.#canaryLoader = loader(this.canarySlot, "canary", () => this.#canary?.version ?? null);
    this.#shadowLoader = loader(
      this.shadowSlot,
      "shadow",
      () => this.#shadowRecord?.version ?? null,
    );
    this.metrics.canaryPercent.set({}, 0);
    this.metrics.canaryRouting.set({}, 0);
  }

  /** Reads the records and follows them; serialised, so a burst of events runs in order. */
  refresh(why = "poll"): Promise<void> {
    this.#chain = this.#chain.then(() => this.#refreshOnce(why)).catch((e) =>
      this.#log(`Cannot follow the traffic records: ${(e as Error).message}`)
    );
    return this.#chain;
  }

  async #refreshOnce(why: string): Promise<void> {
    if (!this.#source.traffic) return;
    const name = this.primary.current?.name ?? (await this.#source.current()).name;
    const records: TrafficRecords = await this.#source.traffic(name);
    await this.#followCanary(records.canary?.state === "active" ? records.canary : null, why);
    await this.#followShadow(records.shadow?.state === "active" ? records.shadow : null, why);
  }

  async #followCanary(want: CanaryRecord | null, why: string): Promise<void> {
    const had = this.#canary;
    if (want === null) {
      this.#canary = null;
      if (had) this.#log(`canary: ${had.version} ended; all requests go to the primary`);
      await this.#canaryLoader.idle();
      await this.canarySlot.swap(null, "no canary is running");
    } else {
      if (had?.version !== want.version) {
        this.#guard = new CanaryGuard(this.#bounds);
        this.#stopped = null;
        this.#recordError = null;
      }
      this.#canary = want;
      await this.#canaryLoader.request({ kind: "follow", reason: why });
    }
    this.#updateGauges();
  }

  async #followShadow(want: ShadowRecord | null, why: string): Promise<void> {
    const had = this.#shadowRecord;
    this.#shadowRecord = want;
    if (had?.version !== want?.version) this.shadow.reset();
    if (want === null) {
      await this.#shadowLoader.idle();
      await this.shadowSlot.swap(null, "no shadow is running");
    } else {
      await this.#shadowLoader.request({ kind: "follow", reason: why });
    }
  }

  #updateGauges(): void {
    const c = this.#canary;
    this.metrics.canaryPercent.reset();
    this.metrics.canaryPercent.set(c ? { version: c.version } : {}, c?.percent ?? 0);
    this.metrics.canaryRouting.set({}, this.#routing() ? 1 : 0);
  }

  #routing(): boolean {
    return this.#canary !== null && this.#stopped === null &&
      this.canarySlot.current?.version === this.#canary.version;
  }

  /** Reads X-Request-Key and records which version answered, with status and latency. */
  middleware(): MiddlewareHandler {
    return async (c, next) => {
      const state: RequestState = { key: c.req.header(REQUEST_KEY_HEADER) ?? null };
      const t0 = performance.now();
      await this.#als.run(state, next);
      if (state.version === undefined) return;
      const ms = performance.now() - t0, status = c.res.status;
      const labels = { version: state.version, role: state.role! };
      this.metrics.requests.inc({ ...labels, status: String(status) });
      this.metrics.latency.observe(ms / 1000, labels);
      if (status >= 500) this.metrics.errors.inc(labels);
      if (state.role === "canary") this.#judge(ms, status >= 500);
    };
  }

  #judge(ms: number, error: boolean): void {
    const why = this.#guard?.observe(ms, error);
    if (!why || this.#stopped !== null || !this.#canary) return;
    const c = this.#canary;
    this.#stopped = `automatic abort: ${why}`;
    this.metrics.canaryAborts.inc({
      version: c.version,
      bound: /^error/.test(why) ? "errors" : "p99",
    });
    this.#updateGauges();
    this.#log(`canary: stopped routing to ${c.version}: ${why}`);
    const name = this.canarySlot.current?.name ?? this.primary.current?.name;
    if (this.#recordAbort && name) {
      this.#recordAbort(name, this.#stopped).then(
        () => this.#log(`canary: abort of ${c.version} written to the registry`),
        (e) => {
          this.#recordError = (e as Error).message;
          this.#log(`canary: cannot write the abort to the registry: ${this.#recordError}`);
        },
      );
    }
  }

  /** Runs fn with the model this request goes to pinned (ModelSlot.use's contract). */
  use<T>(fn: (model: LoadedModel) => Promise<T>): Promise<T> {
    const state = this.#als.getStore();
    const canary = this.#routing() && toCanary(state?.key, this.#canary!.percent);
    return this.#pinned(canary ? "canary" : "primary", state, fn);
  }

  /** Like use(), for a request naming `version` (V2's versioned routes): the slot serving it. */
  useVersion<T>(version: string, fn: (model: LoadedModel) => Promise<T>): Promise<T> {
    const canary = this.canarySlot.current?.version === version &&
      this.primary.current?.version !== version;
    return this.#pinned(canary ? "canary" : "primary", this.#als.getStore(), fn);
  }

  #pinned<T>(role: Role, state: RequestState | undefined, fn: (m: LoadedModel) => Promise<T>) {
    const slot = role === "canary" ? this.canarySlot : this.primary;
    return slot.use((m) => {
      if (state) {
        state.version = m.version;
        state.role = role;
      }
      return fn(this.#tapped(m, role));
    });
  }

  /**
   * The model as handlers see it: encode() also counts the predicted labels and, for the
   * primary, offers the images and answer to the shadow. One wrapper per model, so caches
   * keyed by the model (novelty judges) keep working.
   */
  #tapped(m: LoadedModel, role: Role): LoadedModel {
    let t = this.#taps.get(m);
    if (t) return t;
    const encode = async (images: Float32Array, count: number): Promise<EncodeOutput> => {
      // Copied before the run: a worker backend may take the buffer over.
      const copy = role === "primary" && this.shadow.active && this.shadow.hasRoom
        ? images.slice()
        : null;
      const out = await m.encode(images, count);
      this.#countLabels(m, role, out);
      if (copy) this.shadow.offer({ images: copy, count, out, primary: m });
      else if (role === "primary" && this.shadow.active) this.shadow.drop();
      return out;
    };
    t = new Proxy(m, {
      get(target, prop) {
        if (prop === "encode") return encode;
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    this.#taps.set(m, t);
    return t;
  }

  #countLabels(m: LoadedModel, role: Role, out: EncodeOutput): void {
    const K = m.labels.length;
    for (let i = 0; i < out.count; i++) {
      const label = m.labels[argmax(out.probabilities, i * K, K)];
      this.metrics.predictions.inc({ version: m.version, role, label });
    }
  }

  /** Versions held by the canary and shadow (a remote cache must keep their files). */
  versionsInUse(): string[] {
    return [this.canarySlot.current?.version, this.shadowSlot.current?.version]
      .filter((v): v is string => v !== undefined);
  }

  /** For /v1/models: what the records say and what this server does about them. */
  status() {
    const c = this.#canary, s = this.#shadowRecord;
    const loadError = (r: ReloadStatus) => r.lastError?.message ?? null;
    return {
      canary: c
        ? {
          version: c.version,
          percent: c.percent,
          loaded: this.canarySlot.current?.version === c.version,
          routing: this.#routing(),
          stopped: this.#stopped,
          abortWriteError: this.#recordError,
          error: loadError(this.#canaryLoader.status()),
          ...this.#guard!.summary(),
        }
        : null,
      shadow: s
        ? {
          version: s.version,
          loaded: this.shadowSlot.current?.version === s.version,
          error: loadError(this.#shadowLoader.status()),
          ...this.shadow.stats(),
        }
        : null,
    };
  }

  /** Unloads the canary and shadow once their requests finish (shutdown). */
  async close(): Promise<void> {
    await this.#chain;
    await Promise.all([this.#canaryLoader.idle(), this.#shadowLoader.idle(), this.shadow.idle()]);
    await Promise.all([this.canarySlot.close(), this.shadowSlot.close()]);
  }
}
