/**
 * The service's batching as bench_perf reports it: the inference_* samples scraped from
 * /metrics before and after a row, and their differences summarised (runs, mean batch, queue
 * wait, run and compute time, how busy the computing threads were).
 */

/** Histogram sums, counts and buckets of the inference_* metrics, keyed "name{labels}". */
export function parseInferenceMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = line.match(/^(inference_\w+?)(\{[^}]*\})? ([\d.e+-]+)$/);
    if (m) out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}

/** The inference_* samples of the service at `url` (http://host:port). */
export async function scrape(url: string): Promise<Map<string, number>> {
  return parseInferenceMetrics(await (await fetch(`${url}/metrics`)).text());
}

export interface BatchSummary {
  runs: number;
  meanBatch: number;
  queueMeanMs: number;
  /** Upper bounds of the histogram buckets holding the median and the 99th percentile. */
  queueP50Ms: number;
  queueP99Ms: number;
  runMeanMs: number;
  computeMeanMs: number;
  /** Fraction of the wall time the `workers` computing threads spent computing. */
  busy: number;
}

/** The encoder graph's batching between scrapes `a` and `b`, `wall` seconds apart. */
export function batchSummary(
  a: Map<string, number>,
  b: Map<string, number>,
  wall: number,
  workers: number,
): BatchSummary {
  const d = (k: string) => (b.get(k) ?? 0) - (a.get(k) ?? 0);
  const g = `{graph="model"}`;
  const runs = d(`inference_batch_size_count${g}`);
  const rows = d(`inference_batch_size_sum${g}`);
  const jobs = d(`inference_queue_seconds_count${g}`);
  // Median queue wait from the histogram buckets.
  const buckets = [...b.keys()].filter((k) =>
    k.startsWith('inference_queue_seconds_bucket{graph="model"')
  )
    .map((k) => ({ le: Number(k.match(/le="([^"]+)"/)![1].replace("+Inf", "Infinity")), n: d(k) }))
    .sort((x, y) => x.le - y.le);
  const p = (q: number) => buckets.find((x) => x.n >= q * jobs)?.le ?? NaN;
  // Busy = computing: a pipelined worker's run wall time also covers the batch queued ahead.
  const busy = d(`inference_compute_seconds_sum${g}`) / wall / workers;
  return {
    runs,
    meanBatch: runs ? rows / runs : 0,
    queueMeanMs: jobs ? (d(`inference_queue_seconds_sum${g}`) / jobs) * 1000 : 0,
    queueP50Ms: p(0.5) * 1000,
    queueP99Ms: p(0.99) * 1000,
    runMeanMs: runs ? (d(`inference_run_seconds_sum${g}`) / runs) * 1000 : 0,
    computeMeanMs: runs ? (d(`inference_compute_seconds_sum${g}`) / runs) * 1000 : 0,
    busy,
  };
}
