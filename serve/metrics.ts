/**
 * A minimal Prometheus registry for the service: counters, gauges and histograms with labels,
 * rendered in the text exposition format (version 0.0.4). Small enough to read in one sitting,
 * and it keeps the service free of a metrics dependency. ServiceMetrics names the series the
 * service exports so the app and tests agree on them.
 */

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function renderLabels(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(labels[k])}"`).join(",")}}` : "";
}

// Rendered label sets by a cheap raw key: every request updates several series, and sorting and
// escaping labels each time showed up in the HTTP thread's profile. Bounded, as label values are.
const labelCache = new Map<string, string>();

function labelKey(labels: Labels): string {
  let raw = "";
  for (const k in labels) raw += `${k}\u0001${labels[k]}\u0002`;
  let key = labelCache.get(raw);
  if (key === undefined) {
    key = renderLabels(labels);
    if (labelCache.size < 10_000) labelCache.set(raw, key);
  }
  return key;
}

// The Open Inference Protocol V2 routes (serve/v2/mod.ts) as templates: their paths carry a
// model name and version, and a label per name would make the series unbounded.
const V2_ROUTES: [RegExp, string][] = [
  [/^\/v2\/?$/, "/v2"],
  [/^\/v2\/health\/(live|ready)$/, "/v2/health/$1"],
  [/^\/v2\/models\/[^/]+$/, "/v2/models/:name"],
  [/^\/v2\/models\/[^/]+\/(ready|infer)$/, "/v2/models/:name/$1"],
  [/^\/v2\/models\/[^/]+\/versions\/[^/]+$/, "/v2/models/:name/versions/:version"],
  [
    /^\/v2\/models\/[^/]+\/versions\/[^/]+\/(ready|infer)$/,
    "/v2/models/:name/versions/:version/$1",
  ],
];

/**
 * The route label of a request path: the path itself when it is one of `fixed`, a V2 route's
 * template, else "other" (bounded cardinality).
 */
export function routeLabel(path: string, fixed: readonly string[]): string {
  if (fixed.includes(path)) return path;
  if (path.startsWith("/v2")) {
    for (const [re, label] of V2_ROUTES) if (re.test(path)) return path.replace(re, label);
  }
  return "other";
}

function fmt(v: number): string {
  if (v === Infinity) return "+Inf";
  return Number.isInteger(v) ? String(v) : String(+v.toPrecision(10));
}

export interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  #values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge" = "counter",
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }
  set(labels: Labels, value: number): void {
    this.#values.set(labelKey(labels), value);
  }
  reset(): void {
    this.#values.clear();
  }
  get(labels: Labels = {}): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const [k, v] of this.#values) lines.push(`${this.name}${k} ${fmt(v)}`);
    return lines;
  }
}

export class Histogram implements Metric {
  #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const k = labelKey(labels);
    let s = this.#series.get(k);
    if (!s) {
      this.#series.set(
        k,
        s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 },
      );
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) s.counts[i]++;
    s.sum += value;
    s.count++;
  }
  count(labels: Labels = {}): number {
    return this.#series.get(labelKey(labels))?.count ?? 0;
  }
  sum(labels: Labels = {}): number {
    return this.#series.get(labelKey(labels))?.sum ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.#series.values()) {
      this.buckets.forEach((b, i) =>
        lines.push(`${this.name}_bucket${labelKey({ ...s.labels, le: fmt(b) })} ${s.counts[i]}`)
      );
      lines.push(`${this.name}_bucket${labelKey({ ...s.labels, le: "+Inf" })} ${s.count}`);
      lines.push(`${this.name}_sum${labelKey(s.labels)} ${fmt(s.sum)}`);
      lines.push(`${this.name}_count${labelKey(s.labels)} ${s.count}`);
    }
    return lines;
  }
}

/** Buckets of request latency (1 ms to 5 s): the service's and each model version's. */
const REQUEST_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
export const REQUEST_SECONDS: readonly number[] = REQUEST_MS.map((ms) => ms / 1000);
/** Buckets of one onnxruntime run, seconds (0.1 ms to 250 ms). */
const RUN_SECONDS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];

/** The series this service exports. One instance per app; tests make their own. */
export class ServiceMetrics {
  readonly requests = new Counter(
    "http_requests_total",
    "HTTP requests by route, method and status.",
  );
  readonly latency = new Histogram(
    "http_request_duration_seconds",
    "Time from request to response, by route.",
    REQUEST_SECONDS,
  );
  readonly images = new Counter(
    "images_classified_total",
    "Images run through the encoder, by endpoint.",
  );
  readonly batchSize = new Histogram(
    "inference_batch_size",
    "Rows per onnxruntime run, by graph (model or decoder).",
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  );
  readonly batchJobs = new Histogram(
    "inference_batch_requests",
    "Requests coalesced into one onnxruntime run, by graph.",
    [1, 2, 4, 8, 16, 32, 64, 128, 256],
  );
  readonly queueTime = new Histogram(
    "inference_queue_seconds",
    "Time a request waited in the batching queue before its run started, by graph.",
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
  );
  readonly runTime = new Histogram(
    "inference_run_seconds",
    "Wall time of one onnxruntime run as seen by the batcher (includes the worker round trip and any batch queued ahead of it in the worker), by graph.",
    RUN_SECONDS,
  );
  readonly computeTime = new Histogram(
    "inference_compute_seconds",
    "Time one onnxruntime run spent computing (inside the worker for pooled sessions), by graph.",
    RUN_SECONDS,
  );

  /** Records one completed run (LoadOptions.onRun). */
  observeRun(graph: string, seconds: number, compute: number): void {
    this.runTime.observe(seconds, { graph });
    this.computeTime.observe(compute, { graph });
  }

  /** Records one dispatched run (LoadOptions.onBatch). */
  observeBatch(graph: string, rows: number, stats: { jobs: number; waits: number[] }): void {
    const labels = { graph };
    this.batchSize.observe(rows, labels);
    this.batchJobs.observe(stats.jobs, labels);
    for (const w of stats.waits) this.queueTime.observe(w, labels);
  }
  readonly noveltyPercentile = new Histogram(
    "novelty_percentile",
    "Novelty percentile of each encoded image (share of held-out training images scoring lower), by model name and version; drift moves mass to the top buckets.",
    [50, 75, 90, 95, 99, 99.9, 100],
  );
  readonly outOfDistribution = new Counter(
    "novelty_out_of_distribution_total",
    "Encoded images judged out of distribution (novelty above the threshold), by model name and version.",
  );

  /** Records the novelty of a batch's images (calibrated models only). */
  observeNovelty(
    model: { name: string; version: string },
    fields: readonly { percentile: number | null; outOfDistribution: boolean | null }[],
  ): void {
    if (fields.length === 0 || fields[0].percentile === null) return;
    const labels = { name: model.name, version: model.version };
    let ood = 0;
    for (const f of fields) {
      this.noveltyPercentile.observe(f.percentile!, labels);
      if (f.outOfDistribution) ood++;
    }
    // Created at 0 so rate() and alerts see the series before the first novel input.
    this.outOfDistribution.inc(labels, ood);
  }

  readonly modelInfo = new Counter(
    "model_info",
    "The active model: 1 for the loaded name/version/backend.",
    "gauge",
  );
  readonly ready = new Counter(
    "model_ready",
    "1 when a validated model is serving, else 0.",
    "gauge",
  );

  readonly swaps = new Counter(
    "model_swaps_total",
    "Hot swaps to a new model version that completed.",
  );
  readonly reloadFailures = new Counter(
    "model_reload_failures_total",
    "Distinct bad registry states met (a rejected bundle, an unreadable CURRENT), each counted once however often it is polled; the old model kept serving.",
  );
  readonly reloadFailing = new Counter(
    "model_reload_failing",
    "1 while the registry names something this server rejects (the last reload failed), else 0.",
    "gauge",
  );
  readonly lastFailure = new Counter(
    "model_reload_last_failure_timestamp_seconds",
    "Unix time of the last rejected reload.",
    "gauge",
  );
  readonly swapSeconds = new Histogram(
    "model_swap_duration_seconds",
    "Time to read the registry, load, validate and warm up a new version, up to the switch.",
    [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );

  /** Records which model is active (or none). */
  setActive(model: { name: string; version: string; backend: string } | null): void {
    this.modelInfo.reset();
    if (model) {
      this.modelInfo.set({ name: model.name, version: model.version, backend: model.backend }, 1);
    }
    this.ready.set({}, model ? 1 : 0);
  }

  /** Series other modules own (serve/traffic/metrics.ts), rendered after these. */
  readonly extra: Metric[] = [];

  render(): string {
    const all: Metric[] = [
      this.requests,
      this.latency,
      this.images,
      this.batchSize,
      this.batchJobs,
      this.queueTime,
      this.runTime,
      this.computeTime,
      this.noveltyPercentile,
      this.outOfDistribution,
      this.modelInfo,
      this.ready,
      this.swaps,
      this.reloadFailures,
      this.reloadFailing,
      this.lastFailure,
      this.swapSeconds,
      ...this.extra,
    ];
    return all.flatMap((m) => m.render()).join("\n") + "\n";
  }
}

/**
 * Joins the expositions of several replicas (serve/replicas.ts) into one, each sample labelled
 * `replica="<id>"`, every family's HELP and TYPE once with all replicas' samples under it. A
 * scrape of any replica then sees all of them, and sums across replicas stay meaningful:
 * `sum without (replica) (rate(http_requests_total[1m]))`.
 */
export function mergeReplicaExpositions(parts: { replica: string; text: string }[]): string {
  const families = new Map<string, { head: string[]; samples: string[] }>();
  const comments: string[] = [];
  for (const { replica, text } of parts) {
    const tag = `replica="${escapeLabel(replica)}"`;
    let family: { head: string[]; samples: string[] } | undefined;
    for (const line of text.split("\n")) {
      if (!line) continue;
      const meta = line.match(/^# (HELP|TYPE) (\S+)/);
      if (meta) {
        family = families.get(meta[2]);
        if (!family) families.set(meta[2], family = { head: [], samples: [] });
        if (family.head.length < 2 && !family.head.some((h) => h.startsWith(`# ${meta[1]} `))) {
          family.head.push(line);
        }
        continue;
      }
      if (line.startsWith("#")) {
        comments.push(line);
        continue;
      }
      if (!family) families.set("", family = { head: [], samples: [] }); // samples before any HELP
      const brace = line.indexOf("{"), space = line.indexOf(" ");
      family.samples.push(
        brace >= 0 && brace < space
          ? `${line.slice(0, brace + 1)}${tag},${line.slice(brace + 1)}`
          : `${line.slice(0, space)}{${tag}}${line.slice(space)}`,
      );
    }
  }
  const out = [...comments];
  for (const f of families.values()) out.push(...f.head, ...f.samples);
  return out.join("\n") + "\n";
}
