/**
 * The /metrics series of canary and shadow traffic (serve/traffic/): requests, latency, errors
 * and predicted labels by the version (and role) that answered, the canary's routing state, and
 * the shadow's comparisons with the primary. They render after the service's own series
 * (ServiceMetrics.extra), so replicas merge them like any other.
 */
import { Counter, Histogram, REQUEST_SECONDS, type ServiceMetrics } from "../metrics.ts";

export class TrafficMetrics {
  readonly requests = new Counter(
    "model_version_requests_total",
    "Model requests by the version that answered, its role (primary or canary) and status.",
  );
  readonly errors = new Counter(
    "model_version_errors_total",
    "Model requests answered with a 5xx, by version and role.",
  );
  readonly latency = new Histogram(
    "model_version_request_duration_seconds",
    "Time from request to response of model requests, by the version that answered and role.",
    REQUEST_SECONDS,
  );
  readonly predictions = new Counter(
    "model_version_predictions_total",
    "Top labels predicted, by version, role (primary, canary or shadow) and label.",
  );
  readonly canaryPercent = new Counter(
    "canary_percent",
    "Share of requests the CANARY record sends to its version (0 when none is running).",
    "gauge",
  );
  readonly canaryRouting = new Counter(
    "canary_routing",
    "1 while this server routes to the canary version, 0 once it stopped (aborted or not loaded).",
    "gauge",
  );
  readonly canaryAborts = new Counter(
    "canary_auto_aborts_total",
    "Canaries this server stopped routing to because a bound was passed, by version and bound.",
  );
  readonly shadowCompared = new Counter(
    "shadow_compared_total",
    "Images run on the shadow version and compared with the primary's answer.",
  );
  readonly shadowAgreed = new Counter(
    "shadow_agreed_total",
    "Compared images where the shadow's top label equals the primary's.",
  );
  readonly shadowAgreement = new Counter(
    "shadow_agreement_ratio",
    "Share of compared images with the same top label in both versions.",
    "gauge",
  );
  readonly shadowDistance = new Counter(
    "shadow_latent_distance_mean",
    "Mean L2 distance between the two versions' latent means (mu) of compared images (same latent size only).",
    "gauge",
  );
  readonly shadowDropped = new Counter(
    "shadow_dropped_total",
    "Requests not copied to the shadow because its queue was full.",
  );
  readonly shadowFailures = new Counter(
    "shadow_failures_total",
    "Shadow runs that failed (never visible to clients).",
  );
  readonly shadowQueue = new Counter(
    "shadow_queue_depth",
    "Requests waiting for the shadow version.",
    "gauge",
  );
  readonly shadowLatency = new Histogram(
    "shadow_run_seconds",
    "Time of one shadow run, by shadow version.",
    REQUEST_SECONDS,
  );

  /** Adds these series to `service`'s exposition. */
  constructor(service?: ServiceMetrics) {
    service?.extra.push(
      this.requests,
      this.errors,
      this.latency,
      this.predictions,
      this.canaryPercent,
      this.canaryRouting,
      this.canaryAborts,
      this.shadowCompared,
      this.shadowAgreed,
      this.shadowAgreement,
      this.shadowDistance,
      this.shadowDropped,
      this.shadowFailures,
      this.shadowQueue,
      this.shadowLatency,
    );
  }
}
