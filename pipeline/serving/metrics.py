"""Prometheus metrics of the service, in a registry of its own (``GET /metrics``).

Each app has its own ``CollectorRegistry``, never the process-global one, so several apps in
one process (tests, benchmarks) do not clash or mix their counts. Request metrics are recorded
as requests end; the model's state (version, last reload, reload failures) is read from the
``ModelHolder`` at scrape time, so the reload thread knows nothing about Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from pipeline.serving.holder import ModelHolder

# From a cached /health (sub-millisecond) to 100 tickers of long history (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
OTHER = "other"  # the endpoint label of unknown paths: bounded label values, whatever is asked


class _ModelCollector:
    """The served model's state as metrics, read from the holder when Prometheus scrapes."""

    def __init__(self, holder: ModelHolder) -> None:
        self.holder = holder

    def describe(self) -> Iterator[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        return self._families(with_samples=True)

    def _families(self, with_samples: bool = False) -> Iterator[Metric]:
        served = self.holder.current if with_samples else None
        version = GaugeMetricFamily(
            "stockpipe_model_version",
            "Registry version of the model being served (absent before the first load)",
            labels=["model_name"],
        )
        reloaded = GaugeMetricFamily(
            "stockpipe_model_last_reload_timestamp_seconds",
            "When the model being served was loaded (unix seconds)",
        )
        if served is not None:
            number = served.model.version or ""
            version.add_metric([served.model.name or ""], float(number) if number.isdigit() else 0)
            reloaded.add_metric([], served.loaded_at)
        yield version
        yield reloaded
        yield CounterMetricFamily(
            "stockpipe_model_reloads",
            "Models loaded and swapped in, the first one included",
            value=self.holder.reloads if with_samples else None,
        )
        yield CounterMetricFamily(
            "stockpipe_model_reload_failures",
            "Registry polls or model loads that failed (the old model kept serving)",
            value=self.holder.failures if with_samples else None,
        )


class ServiceMetrics:
    """Request duration per endpoint, predictions per model version, errors by status."""

    def __init__(self, holder: ModelHolder) -> None:
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "stockpipe_request_duration_seconds",
            "Time from request to response, per endpoint and method",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "stockpipe_predictions",
            "Predictions served (one per ticker), per model version",
            ["model_version"],
            registry=self.registry,
        )
        self.errors = Counter(
            "stockpipe_http_errors",
            "Responses with a 4xx or 5xx status, per status code",
            ["status"],
            registry=self.registry,
        )
        self.registry.register(_ModelCollector(holder))

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        self.duration.labels(endpoint=endpoint, method=method).observe(seconds)
        if status >= 400:
            self.errors.labels(status=str(status)).inc()

    def served(self, version: str | None, count: int) -> None:
        """Record ``count`` predictions made by model ``version``."""
        self.predictions.labels(model_version=version or "").inc(count)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
