"""Prometheus metrics of the service, in a registry of its own (``GET /metrics``).

Each app has its own ``CollectorRegistry``, never the process-global one, so several apps in
one process (tests, benchmarks) do not clash or mix their counts. Request metrics are recorded
as requests end; the models' state (version, last reload, reload failures) is read from their
``ModelHolder`` at scrape time, so the reload threads know nothing about Prometheus.

With one model the series are those the service always had. Serving several (one per
horizon), every per-model series is labelled ``model_name`` and ``horizon`` (the registered
model and the horizon it was configured for: both known before it loads, so a counter keeps
one series for its whole life), and predictions are counted per model name, horizon and
version.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from pipeline.serving.holder import Served, Slot, Slots

# From a cached /health (sub-millisecond) to 100 tickers of long history (seconds).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
OTHER = "other"  # the endpoint label of unknown paths: bounded label values, whatever is asked
MODEL_LABELS = ["model_name", "horizon"]  # of every per-model series, with several models


def _version_number(served: Served) -> float:
    number = served.model.version or ""
    return float(number) if number.isdigit() else 0


class _ModelCollector:
    """The served models' state as metrics, read from their holders when Prometheus scrapes."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self.labels = MODEL_LABELS if slots.several else []

    def describe(self) -> Iterator[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        return self._families(with_samples=True)

    def _values(self, slot: Slot) -> list[str]:
        return [slot.name, str(slot.horizon)] if self.slots.several else []

    def _families(self, with_samples: bool = False) -> Iterator[Metric]:
        version = GaugeMetricFamily(
            "stockpipe_model_version",
            "Registry version of the model being served (absent before the first load)",
            labels=self.labels or ["model_name"],
        )
        reloaded = GaugeMetricFamily(
            "stockpipe_model_last_reload_timestamp_seconds",
            "When the model being served was loaded (unix seconds)",
            labels=self.labels,
        )
        reloads = CounterMetricFamily(
            "stockpipe_model_reloads",
            "Models loaded and swapped in, the first one included",
            labels=self.labels,
        )
        failures = CounterMetricFamily(
            "stockpipe_model_reload_failures",
            "Registry polls or model loads that failed (the old model kept serving)",
            labels=self.labels,
        )
        for slot in self.slots if with_samples else ():
            values, served = self._values(slot), slot.holder.current
            if served is not None:
                # One model: labelled by the served model's name, as it always was.
                named = values or [served.model.name or ""]
                version.add_metric(named, _version_number(served))
                reloaded.add_metric(values, served.loaded_at)
            reloads.add_metric(values, slot.holder.reloads)
            failures.add_metric(values, slot.holder.failures)
        yield from (version, reloaded, reloads, failures)


class ServiceMetrics:
    """Request duration per endpoint, predictions per model version, errors by status."""

    def __init__(self, slots: Slots) -> None:
        self.registry = CollectorRegistry()
        self.several = slots.several
        self.duration = Histogram(
            "stockpipe_request_duration_seconds",
            "Time from request to response, per endpoint and method",
            ["endpoint", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "stockpipe_predictions",
            "Predictions served (one per ticker and horizon), per model version",
            [*(MODEL_LABELS if self.several else []), "model_version"],
            registry=self.registry,
        )
        self.errors = Counter(
            "stockpipe_http_errors",
            "Responses with a 4xx or 5xx status, per status code",
            ["status"],
            registry=self.registry,
        )
        self.registry.register(_ModelCollector(slots))

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        self.duration.labels(endpoint=endpoint, method=method).observe(seconds)
        if status >= 400:
            self.errors.labels(status=str(status)).inc()

    def served(self, slot: Slot, version: str | None, count: int) -> None:
        """Record ``count`` predictions made by version ``version`` of ``slot``'s model."""
        labels = [slot.name, str(slot.horizon)] if self.several else []
        self.predictions.labels(*labels, version or "").inc(count)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
