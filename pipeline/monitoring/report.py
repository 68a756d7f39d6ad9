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
    """One model input (or the predictions) on the recent window against its reference."""

    status: Status
    psi: Score = None
    ks_statistic: Score = None
    ks_pvalue: Score = None  # informational: assumes independent rows
    n: int = 0  # finite recent values
    warn_above: Score = None  # the PSI thresholds this input was judged with
    alert_above: Score = None
    reason: str | None = None


class DriftSection(_Result):
    status: Status
    window: int  # trading days per ticker
    null_window: int | None = None  # the stored calibration window used (see profile.py)
    features: dict[str, Drift] = {}
    predictions: Drift | None = None
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


class HealthSection(_Result):
    """What the prediction log says about the API; latency is the service's own metric."""

    status: Status = "ok"
    requests: int  # distinct request times among the API's surviving rows: a lower bound
    prediction_rows: int
    first_request: str
    last_request: str
    per_day: list[DayCount]
    latency: str = (
        "not in the prediction log: see the service's GET /metrics (request duration histogram)"
    )
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
    model: ModelRef
    generated_at: str
    window: WindowInfo
    drift: DriftSection
    performance: PerformanceSection
    health: HealthSection | None  # only when the API has logged predictions of this version
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
        return cls(
            status=worst(sections),
            model=model,
            generated_at=generated_at,
            window=window,
            drift=drift,
            performance=performance,
            health=health,
        )
