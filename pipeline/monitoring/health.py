"""Service health: what the API served (the prediction log) and how fast the service answered
(its request log).

The prediction log holds one row per (version, ticker, as-of date, horizon), so a later request
for the same ticker and date replaces the earlier row. Requests are counted as distinct request
times among the rows that survive: a lower bound, said so in the report rather than presented
as exact.

The request log (``pipeline.serving.requeststore``) holds every request the service answered,
probes (``/health``, ``/ready``, ``/metrics``) included, whatever version answered, kept to its
newest rows. Its window is the last ``window`` *calendar* days up to now (UTC), ``window`` being
the monitoring window's length: it follows the clock, not the price data's dates, so `monitor`
on stale prices still reports how the service answers now. Latency percentiles (p50, p95, p99,
ms) and request counts are computed per endpoint here and nowhere else, with polars' ``linear``
interpolation (numpy.percentile's default method).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal, Protocol

import polars as pl

from pipeline.monitoring.report import DayCount, EndpointLatency, HealthSection

QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
METHOD: Final[Literal["linear"]] = "linear"  # numpy.percentile's default, too


class RequestTimes(Protocol):
    """The service's request log: the requests that arrived at or after ``start``, with
    ``at`` (UTC), ``endpoint``, ``method``, ``status`` and ``latency_ms``."""

    def since(self, start: dt.datetime) -> pl.DataFrame: ...


def latency_start(days: int, now: dt.datetime | None = None) -> dt.datetime:
    """Where the request log's window starts: ``days`` calendar days before ``now`` (UTC)."""
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)


def health_section(
    rows: pl.DataFrame, requests: pl.DataFrame, since: dt.datetime
) -> HealthSection | None:
    """The API's logged prediction rows of one version (all sources may be given) and the
    request log's rows since ``since`` (an aware time: ``RequestTimes.since``); None when
    neither has any."""
    api = rows.filter(pl.col("source") == "api")
    if api.height == 0 and requests.height == 0:
        return None
    days = round((dt.datetime.now(dt.UTC) - since).total_seconds() / 86400)
    return HealthSection(
        **_predictions(api),
        latency_since=since.astimezone(dt.UTC).isoformat(timespec="seconds"),
        logged_requests=requests.height,
        latency=endpoint_latency(requests),
        latency_method=METHOD,
        latency_note=None
        if requests.height
        else f"the service logged no request in the last {days} days (its request log is "
        "written by `stockpipe serve` beside the prediction log)",
    )


def endpoint_latency(requests: pl.DataFrame) -> dict[str, EndpointLatency]:
    """Per endpoint: its request count, 5xx answers and latency percentiles (ms)."""
    latency = pl.col("latency_ms")
    per_endpoint = (
        requests.group_by("endpoint")
        .agg(
            pl.len().alias("requests"),
            (pl.col("status") >= 500).sum().alias("server_errors"),
            *(latency.quantile(q, interpolation=METHOD).alias(k) for k, q in QUANTILES.items()),
        )
        .sort("endpoint")
    )
    return {r.pop("endpoint"): EndpointLatency(**r) for r in per_endpoint.iter_rows(named=True)}


def _predictions(api: pl.DataFrame) -> dict[str, Any]:
    """The prediction log's fields of the section: the API's rows, per day."""
    if api.height == 0:
        return {}
    per_day = (
        api.group_by(pl.col("scored_at").dt.date().alias("day"))
        .agg(
            pl.col("scored_at").n_unique().alias("requests"),
            pl.len().alias("prediction_rows"),
        )
        .sort("day")
    )
    return {
        "requests": int(api["scored_at"].n_unique()),
        "prediction_rows": api.height,
        "first_request": str(api["scored_at"].min()),
        "last_request": str(api["scored_at"].max()),
        "per_day": [
            DayCount(
                day=str(r["day"]), requests=r["requests"], prediction_rows=r["prediction_rows"]
            )
            for r in per_day.iter_rows(named=True)
        ],
    }
