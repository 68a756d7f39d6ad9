"""Typed evaluation results: metric blocks, folds, baselines and the walk-forward report.

Frozen pydantic models, so that every caller reads attributes checked by mypy instead of
string keys, and the JSON they serialise to (``metrics.json``, the train summary) has a
published schema. An undefined metric (a Sharpe with no variance, a correlation with a constant
forecast) is ``None`` here and ``null`` in JSON, never NaN: the files stay strict JSON.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _finite_or_none(value: Any) -> Any:
    # NaN and inf are how numpy says "undefined"; JSON has no such number, so they become None.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


Score = Annotated[float | None, BeforeValidator(_finite_or_none)]


class Record(BaseModel):
    """A frozen result that also reads by key (``summary["champion"]["version"]``).

    Attribute access is the typed API; the key lookup keeps code written against the former
    dict results (scripts, notebooks, older tests) working without a conversion step.
    """

    # Docstrings under fields become their descriptions in the published JSON schema.
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)


class _MetricBlock(Record):
    def defined(self) -> dict[str, float]:
        """The defined values by name, e.g. for MLflow (which has no 'undefined')."""
        return {k: v for k, v in self.model_dump().items() if isinstance(v, float)}


class ForecastMetrics(_MetricBlock):
    """How close the predicted returns are (see :mod:`pipeline.evaluation.forecast`)."""

    rmse: Score
    mae: Score
    mape: Score
    r2: Score
    directional_accuracy: Score
    ic: Score
    rank_ic: Score


class StrategyMetrics(_MetricBlock):
    """How the strategy traded on the predictions did (see :mod:`pipeline.evaluation.strategy`)."""

    total_return: Score
    annual_return: Score
    annual_volatility: Score
    sharpe: Score
    sortino: Score
    max_drawdown: Score
    calmar: Score
    hit_rate: Score
    turnover: Score
    exposure: Score


# Pydantic orders inherited fields from the last base to the first: forecast metrics come first.
class Metrics(StrategyMetrics, ForecastMetrics):
    """Forecast and strategy metrics of one set of test rows (a fold, all folds, a mean)."""


class FoldWindow(Record):
    """Where a walk-forward fold trains and tests (inclusive dates, ISO strings)."""

    fold: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    train_rows: int
    test_rows: int


class FoldReport(Metrics, FoldWindow):
    """One walk-forward fold: its windows, then the metrics of its test rows."""


class Baselines(Record):
    """No-skill answers on the very test rows the model was scored on (pooled)."""

    zero_return: ForecastMetrics
    last_return: Metrics  # momentum: the return of the past `horizon` days, traded on
    buy_and_hold: StrategyMetrics


PORTFOLIO_METRICS = (
    "sharpe",
    "annual_return",
    "annual_volatility",
    "max_drawdown",
    "turnover",
    "hit_rate",
    "long_short_spread",
    "rank_ic",
    "rank_ic_ir",
    "rank_ic_tstat",
)


class PortfolioReport(Record):
    """The cross-sectional top/bottom-k portfolio of a panel, on the walk-forward test rows.

    Built by :func:`pipeline.evaluation.portfolio.portfolio_report`, whose docstring has the
    conventions (holding periods, weights, costs, clamping, simple versus log returns).
    """

    top_k: int
    bottom_k: int
    weighting: str
    rebalance_days: int
    """As configured."""
    rebalance_every: int
    """Trading days between rebalances actually used: rebalance_days rounded up to a multiple
    of the horizon, so that holding periods never overlap."""
    cost_bps: float
    n_tickers: int
    periods: int
    """Non-overlapping holding periods (every horizon-th test date) the metrics are over."""
    rebalances: int
    clamped_rebalances: int
    """Rebalances with fewer than top_k + bottom_k tickers: each side then got at most half."""
    tied_rebalances: int = 0
    """Rebalances where tied predictions straddled a book's boundary and shared its places."""
    sharpe: Score
    annual_return: Score
    annual_volatility: Score
    max_drawdown: Score
    turnover: Score
    """Mean over periods of the sum of absolute weight changes (entry included)."""
    hit_rate: Score
    long_short_spread: Score
    """Mean per period of the long book's return minus the short book's, before costs
    (null when long-only)."""
    quantile_returns: list[Score]
    """Mean simple forward return of each prediction quantile, bottom to top: per-date
    buckets of the cross-section, averaged over dates (``n_quantiles`` of them)."""
    n_quantiles: int = 5
    """How many buckets ``quantile_returns`` has: 5 (quintiles), or one per ticker for a panel
    of fewer tickers, so no bucket is empty by construction. Reports from before this field
    always had 5."""
    rank_ic: Score
    """Mean over periods of the per-date Spearman correlation of prediction and return."""
    rank_ic_ir: Score
    """mean / std of the per-date rank IC, times sqrt(periods per year)."""
    rank_ic_tstat: Score
    """mean / (std / sqrt(rank_ic_dates)) of the per-date rank IC."""
    rank_ic_dates: int

    def metrics(self) -> dict[str, float]:
        """The defined portfolio metrics by name (no configuration echo), e.g. for MLflow."""
        out = {k: getattr(self, k) for k in PORTFOLIO_METRICS}
        for q, value in enumerate(self.quantile_returns, start=1):
            out[f"q{q}_return"] = value
        return {k: v for k, v in out.items() if isinstance(v, float)}


class IntervalScore(_MetricBlock):
    """How one level's prediction interval did on the walk-forward test rows.

    Fold ``k``'s bands are calibrated on folds ``< k`` only, so coverage is measured on rows
    never used for calibration; the first fold (nothing before it) is not scored.
    """

    n: int
    """Test rows scored (all folds but the first, with a defined scale)."""
    coverage: Score
    """Share of those rows whose realised return fell inside the band (nominal: the level)."""
    mean_width: Score
    """Mean of upper - lower, in log-return units."""
    winkler: Score
    """Mean width plus 2 / (1 - level) times the distance by which a miss fell outside:
    lower is better, and a narrow band pays for each miss."""
    q: Score
    """The conformal quantile over every fold's residuals: the half-width (scaled method: per
    unit of the scale feature) that a model trained on these folds carries to `score`."""


IntervalLevels = dict[str, IntervalScore]


class WalkForwardReport(Metrics):
    """Pooled metrics over every test row, baselines, honesty and the per-fold values.

    ``n_trials`` and ``trial_sharpe_variance`` are the deflated Sharpe's N and V, both over the
    same trials (see :class:`pipeline.evaluation.honesty.TrialSet`).
    """

    n_trials: int
    """Trials the model was picked from (all candidates', pruned included): the DSR's N."""
    trial_sharpe_variance: float
    """Variance of those trials' per-period Sharpes: the DSR's V."""
    deflated_sharpe: Score
    """Probability that the pooled Sharpe is not luck among ``n_trials`` tries."""
    sharpe_ci: tuple[Score, Score]
    """95% stationary-bootstrap interval of the pooled annualised Sharpe."""
    baselines: Baselines
    """No-skill forecasts and buy-and-hold, pooled over the same test rows."""
    folds: list[FoldReport]
    """Each fold's windows and the metrics of its test rows alone."""
    portfolio: PortfolioReport | None = None
    """A panel's cross-sectional top/bottom-k portfolio; null for a single ticker."""
    intervals: IntervalLevels | None = None
    """Conformal prediction intervals of the configured method, by level (``"80"``); null when
    none are configured."""
    intervals_method: Literal["split", "scaled"] | None = None
    """``scaled`` (residuals divided by ``intervals_scale_feature``) or ``split``."""
    intervals_scale_feature: str | None = None
    """The volatility feature whose value on a row scales its band (scaled method only)."""
    intervals_split: IntervalLevels | None = None
    """Plain split conformal on the same rows, next to the scaled method's (null otherwise)."""


class BacktestReport(WalkForwardReport):
    """What ``stockpipe backtest`` returns: the report plus which model, folds and run."""

    model_uri: str
    model_version: str | None
    horizon: int
    """Trading days ahead the model predicts (each horizon has its own metrics.json)."""
    folds_hash: str
    run_id: str
