"""`monitor`'s health section (issue 24 item 4): the API's prediction-log rows, and latency per
endpoint from the service's request log, checked against numpy.percentile (method 'linear') on
the raw rows; the section exists when either log has rows; the command's echo line."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from pipeline.cli.monitor import _health
from pipeline.data.predlog import empty_log
from pipeline.monitoring.health import health_section, latency_start
from pipeline.monitoring.report import HealthSection

NOW = dt.datetime.now(dt.UTC)
SINCE = latency_start(60, NOW)


def requests(latencies: dict[str, list[float]], statuses: list[int] | None = None) -> pl.DataFrame:
    """Request-log rows (``RequestStore.since``'s columns): these latencies per endpoint."""
    endpoints = [e for e, values in latencies.items() for _ in values]
    return pl.DataFrame(
        {
            "at": [NOW.replace(tzinfo=None)] * len(endpoints),
            "endpoint": endpoints,
            "method": ["GET"] * len(endpoints),
            "status": statuses or [200] * len(endpoints),
            "latency_ms": [v for values in latencies.values() for v in values],
        }
    )


def test_health_counts_the_api_rows_only() -> None:
    t0 = dt.datetime(2026, 9, 1, 12)
    times = [t0, t0, t0 + dt.timedelta(minutes=5), t0 + dt.timedelta(days=1), t0]
    rows = pl.DataFrame({"source": ["api", "api", "api", "api", "score"], "scored_at": times})
    health = health_section(rows, requests({}), SINCE)
    assert health is not None and (health.requests, health.prediction_rows) == (3, 4)
    assert [(d.day, d.requests, d.prediction_rows) for d in health.per_day] == [
        ("2026-09-01", 2, 3),
        ("2026-09-02", 1, 1),
    ]
    assert health.latency == {} and health.logged_requests == 0
    assert health.latency_note == (
        "the service logged no request in the last 60 days (its request log is written by "
        "`stockpipe serve` beside the prediction log)"
    )
    assert health_section(rows.filter(pl.col("source") == "score"), requests({}), SINCE) is None


def test_latency_per_endpoint_equals_numpy_on_the_raw_rows() -> None:
    rng = np.random.default_rng(7)
    raw = {
        "/predict": list(rng.lognormal(2.7, 0.5, 1001)),
        "/health": list(rng.exponential(0.4, 37)),
        "/ready": [0.25],  # one row: every percentile is that row
        "/metrics": [1.0, 3.0],  # two: linear interpolation between them
    }
    statuses = [503 if k % 100 == 0 else 200 for k in range(1001)] + [200] * 40
    health = health_section(empty_log(), requests(raw, statuses), SINCE)
    assert health is not None and health.latency_method == "linear"
    assert health.requests == 0 and health.first_request is None  # no API prediction logged
    assert health.logged_requests == 1041 and health.latency_note is None
    assert list(health.latency) == sorted(raw)
    for endpoint, values in raw.items():
        got = health.latency[endpoint]
        want = np.percentile(values, [50, 95, 99], method="linear")
        assert [got.p50_ms, got.p95_ms, got.p99_ms] == pytest.approx(want, rel=1e-12)
        assert got.requests == len(values)
    assert health.latency["/predict"].server_errors == 11
    assert health.latency["/metrics"].p95_ms == pytest.approx(1.0 + 2.0 * 0.95)
    assert health.latency_since == SINCE.isoformat(timespec="seconds")


def test_the_echo_line_shows_the_requests_and_predict_latency() -> None:
    raw = {"/predict": [10.0, 20.0, 30.0], "/health": [0.5] * 1231}
    health = health_section(empty_log(), requests(raw), SINCE)
    assert health is not None
    assert _health(health) == (
        "  health: 1,234 requests; /predict p50 20.0 ms p95 29.0 ms p99 29.8 ms; "
        "prediction log: 0 API requests, 0 rows"
    )
    probes_only = health_section(empty_log(), requests({"/health": [0.5, 1.5]}), SINCE)
    assert probes_only is not None and "/health p50 1.0 ms" in _health(probes_only)
    silent = HealthSection(requests=2, prediction_rows=3, latency_since="x", latency_note="n")
    assert _health(silent) == "  health: 0 requests; n; prediction log: 2 API requests, 3 rows"
    assert _health(None) == "  health: no API prediction and no service request logged"
