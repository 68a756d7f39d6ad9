"""What `stockpipe monitor` reports (``monitor.json``), as typed results, and how statuses
are decided and combined.

Statuses, from best to worst: ``ok``; ``insufficient`` (too few realised predictions to
judge); ``unavailable`` (nothing to compare with, e.g. a version registered before reference
profiles existed); ``warn``; ``alert``. A section's status is the worst of its parts and the
top-level status the worst of the sections: only ``alert`` makes the command exit 3.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from pipeline.evaluation.results import Score

Status = Literal["ok", "insufficient", "unavailable", "warn", "alert"]
SEVERITY: dict[Status, int] = {"ok": 0, "insufficient": 1, "unavailable": 2, "warn": 3, "alert": 4}


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe of ``statuses`` (``ok`` for none)."""
    return max(statuses, key=SEVERITY.__getitem__, default="ok")


def level(value: float, warn_above: float, alert_above: float) -> Status:
    """``alert`` above ``alert_above``, ``warn`` above ``warn_above``, else ``ok``."""
    if value > alert_above:
        return "alert"
    return "warn" if value > warn_above else "ok"


def shortfall(value: float, warn_below: float, alert_below: float) -> Status:
    """``alert`` below ``alert_below``, ``warn`` below ``warn_below``, else ``ok``."""
    if value < alert_below:
        return "alert"
    return "warn" if value < warn_below else "ok"


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Drift(_Result):
    """One model input (or the predictions) on the recent window against its reference.

    ``detector`` says what set the status: ``novelty`` (the training range and the run rule,
    :mod:`pipeline.monitoring.novelty`) or ``psi`` (calibrated PSI: profiles older than format
    2, or ``monitoring.detector: psi``). PSI and KS are reported either way.
    """

    status: Status
    detector: str | None = None
    psi: Score = None
    ks_statistic: Score = None
    ks_pvalue: Score = None  # informational: assumes independent rows
    n: int = 0  # finite recent values
    warn_above: Score = None  # the PSI thresholds (detector psi)
    alert_above: Score = None
    # novelty: the training range of the ticker furthest outside (its own, else pooled),
    # days of the window beyond it, the largest excess in range widths, the last value and
    # the first day of the episode that holds the status.
    training_low: Score = None
    training_high: Score = None
    days_beyond: int | None = None
    max_excess: Score = None
    last_value: Score = None
    since: str | None = None
    tickers: list[str] = []  # the tickers at this status (panels)
    message: str | None = None  # one line: what moved, how far, since when
    reason: str | None = None


class DriftSection(_Result):
    status: Status
    window: int  # trading days per ticker
    detector: str | None = None
    # novelty: a day counts beyond these margins (range widths) and a status needs
    # ``run_days`` such days among the last ``run_window``.
    warn_margin: Score = None
    alert_margin: Score = None
    run_days: int | None = None
    run_window: int | None = None
    null_window: int | None = None  # the stored calibration window used (detector psi)
    features: dict[str, Drift] = {}
    data: dict[str, Drift] = {}  # monitored data columns (the volume level)
    predictions: Drift | None = None
    tickers: dict[str, Status] = {}  # each ticker's worst input status
    alerts: list[str] = []  # one line per input at warn or alert, alerts first
    reason: str | None = None


class Band(_Result):
    """Where a live metric on ``n`` rows would fall if the backtest's skill held."""

    alert_below: Score
    warn_below: Score
    median: Score
    high: Score  # the upper quantile matching ``warn_below``, for the plot


class Rolling(_Result):
    """Directional accuracy and IC over the last ``window`` dates, at every date."""

    window: int
    dates: list[str]
    directional_accuracy: list[Score]
    ic: list[Score]


class PerformanceSection(_Result):
    status: Status
    n: int  # logged predictions whose realised return is known
    # The prediction-log sources graded (score, cycle, replay unless asked otherwise): one
    # row per prediction key, the first source listed winning where several logged it.
    sources: list[str]
    first_date: str | None = None
    last_date: str | None = None
    directional_accuracy: Score = None
    ic: Score = None  # Pearson; per date then averaged for a panel (as in the backtest)
    ic_method: str = "pearson"
    rank_ic: Score = None  # Spearman
    rmse: Score = None
    rmse_zero: Score = None  # the zero forecast on the same rows
    strategy_total_return: Score = None
    strategy_sharpe: Score = None
    buy_and_hold_total_return: Score = None
    band: dict[str, Band] | None = None  # directional_accuracy, ic
    band_method: str | None = None
    rolling: Rolling | None = None
    reason: str | None = None


class DayCount(_Result):
    day: str
    requests: int
    prediction_rows: int


class EndpointLatency(_Result):
    """The requests to one endpoint (its route path) in the request log, and their latency
    percentiles in milliseconds (``HealthSection.latency_method``)."""

    requests: int
    server_errors: int  # answered 5xx
    p50_ms: float
    p95_ms: float
    p99_ms: float


class HealthSection(_Result):
    """The API: this version's predictions in the prediction log (``requests`` to
    ``per_day``), and every request the service logged since ``latency_since`` whatever
    version answered, probes included, with its latency per endpoint (``latency``)."""

    status: Status = "ok"
    requests: int = 0  # distinct request times among the API's surviving rows: a lower bound
    prediction_rows: int = 0
    first_request: str | None = None  # None: the API logged no prediction of this version
    last_request: str | None = None
    per_day: list[DayCount] = []
    latency_since: str  # UTC: the request log's rows from then to now are counted
    logged_requests: int = 0  # every request in the request log since latency_since
    latency: dict[str, EndpointLatency] = {}  # by endpoint: /predict, /health, /ready, ...
    latency_method: str = "linear"  # the percentiles' interpolation (numpy's default)
    latency_note: str | None = None  # why latency is empty
    note: str = (
        "a later request for the same ticker and as-of date replaces the earlier row, so "
        "requests counts the requests whose rows survive"
    )


class ModelRef(_Result):
    name: str | None
    version: str | None
    uri: str
    run_id: str | None = None
    horizon: int | None = None  # trading days ahead; each horizon is monitored on its own


class WindowInfo(_Result):
    days: int
    first_date: str
    last_date: str
    rows: int
    tickers: list[str]


class MonitorReport(_Result):
    """The whole of ``monitor.json``."""

    status: Status
    headline: str = ""  # the status in one line, naming the tickers and inputs that moved
    model: ModelRef
    generated_at: str
    window: WindowInfo
    drift: DriftSection
    performance: PerformanceSection
    health: HealthSection | None  # None: no API prediction of this version, no request logged
    run_id: str | None = None  # the MLflow monitoring run

    @classmethod
    def combine(
        cls,
        model: ModelRef,
        generated_at: str,
        window: WindowInfo,
        drift: DriftSection,
        performance: PerformanceSection,
        health: HealthSection | None,
    ) -> MonitorReport:
        """The report with its top-level status: the worst of its sections."""
        sections = [drift.status, performance.status, *([health.status] if health else [])]
        status = worst(sections)
        return cls(
            status=status,
            headline=headline(status, drift, performance),
            model=model,
            generated_at=generated_at,
            window=window,
            drift=drift,
            performance=performance,
            health=health,
        )


def headline(status: Status, drift: DriftSection, performance: PerformanceSection) -> str:
    """``alert: drift in NVDA (ewm_vol_logret_1_10, natr_14); performance ok``."""
    moved = {**drift.features, **drift.data}
    if drift.predictions is not None:
        moved["predictions"] = drift.predictions
    flagged = [n for n, d in moved.items() if d.status == drift.status and n]
    where = [t for t, s in drift.tickers.items() if s == drift.status]
    text = f"drift {drift.status}"
    if drift.status in ("warn", "alert"):
        shown = ", ".join(flagged[:5]) + (
            f" and {len(flagged) - 5} more" if len(flagged) > 5 else ""
        )
        text = f"drift {drift.status} in {', '.join(where) or 'the window'} ({shown})"
    return f"{status}: {text}; performance {performance.status}"
