"""The train summary: what ``train()`` returns and ``--summary`` writes, as typed models.

Other tools and CI read ``outputs/train_summary.json``; its JSON schema is published at
``docs/schemas/train_summary.schema.json`` and regenerated from these models with
``python -m pipeline.schemas`` (a test fails when the file is stale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import model_validator
from typing_extensions import TypedDict  # pydantic needs it, not typing's, before 3.12

from pipeline.evaluation.results import (
    FoldReport,
    ForecastMetrics,
    Metrics,
    Record,
    Score,
    WalkForwardReport,
)

# Where the schema is published (relative to the repository root); pipeline.schemas lists it
# from here, so the summary depends on nothing that lists the published schemas.
SCHEMA_PATH = Path("docs/schemas/train_summary.schema.json")


class CandidateSummary(Record):
    """One competing candidate: its budget, its best trial and its metrics (fold means)."""

    name: str
    estimator: str
    best_value: Score
    """The primary metric of the best trial (its mean over folds)."""
    n_trials: int
    """Finished trials: complete, pruned and failed."""
    n_pruned: int
    n_failed: int
    budget: int
    timed_out: bool
    best_params: dict[str, Any]
    """Estimator and selector parameters, tuned and fixed."""
    seconds: float
    metrics: Metrics
    """Per-fold mean of the best parameters' metrics."""
    model_uri: str
    run_id: str


class Champion(Record):
    """The registered winner and what the promotion gate decided about it."""

    candidate: str
    run_id: str
    parent_run_id: str
    registered_model: str
    version: str | None
    """None when nothing was registered (`tune`, `train --no-register`)."""
    model_uri: str
    """The registered version's URI, or the logged model's when nothing was registered."""
    alias: str | None
    promoted: bool
    reason: str
    forced: bool
    incumbent_version: str | None
    incumbent_value: Score
    primary_metric: str
    primary_value: Score


class FoldsLayout(Record):
    """The fold layout used; ``adapted`` says why it differs from the configured one."""

    n_folds: int
    test_size: int
    adapted: str | None


class SkippedTicker(TypedDict):
    """A ticker left out for too short a history (a plain dict in memory and in JSON)."""

    rows: int
    needed: int


class DataSummary(Record):
    """The input the model was trained on."""

    rows: int
    tickers: list[str]
    skipped_tickers: dict[str, SkippedTicker]
    first_date: str
    last_date: str
    sha256: str
    source: str
    training_rows: int


class TrainBaselines(Record):
    """The zero-return forecast, pooled over every test row: ``backtest.baselines.zero_return``."""

    zero_return: ForecastMetrics
    """Always predicting no change, pooled: ``backtest.baselines.zero_return``."""


class TrainSummary(Record):
    """Everything a training job decided and measured.

    ``metrics`` and ``folds`` are per fold (``metrics`` is the mean of ``folds``, the numbers the
    competition ranked on); ``backtest`` and ``baselines`` are pooled over every test row.
    """

    champion: Champion
    metrics: Metrics
    """Per-fold mean of the champion's metrics: the mean of ``folds``, what was ranked on."""
    folds: list[FoldReport]
    """The champion's metrics per fold (``backtest.folds``)."""
    folds_layout: FoldsLayout
    baselines: TrainBaselines
    """Pooled over every test row: the same numbers as ``backtest.baselines``."""
    backtest: WalkForwardReport
    """The champion's walk-forward report, pooled over every test row (``metrics.json``)."""
    candidates: list[CandidateSummary]
    timed_out: list[str]
    """Candidates whose ``timeout_seconds`` stopped their study before its budget."""
    study_name: str
    n_trials: int
    """Trials behind the deflated Sharpe: ``backtest.n_trials``."""
    data: DataSummary
    lineage: dict[str, str]
    features: list[str]
    features_left_out: dict[str, list[str]] = {}
    """Families left out of `__AUTO__` because the data lacks a column: family -> the missing
    price columns (a close-only file leaves out natr, stochastic, obv_ratio, ...)."""
    horizon: int
    tracking_uri: str
    seconds: float
    by_horizon: dict[str, TrainSummary] = {}
    """With several horizons: each horizon's own summary, by horizon (the top level is the
    primary horizon's); empty for a single horizon."""

    @model_validator(mode="after")
    def _one_answer(self) -> TrainSummary:
        # Two different "predict zero" numbers in one summary was issue 11: refuse it.
        if self.baselines.zero_return != self.backtest.baselines.zero_return:
            raise ValueError("baselines.zero_return must be backtest.baselines.zero_return")
        if self.n_trials != self.backtest.n_trials:
            raise ValueError("n_trials must be the deflated Sharpe's backtest.n_trials")
        return self
