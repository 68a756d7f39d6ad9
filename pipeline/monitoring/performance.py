"""Live performance: the prediction log joined to realised returns, judged against the band
of what the backtest's own out-of-sample predictions give on as many dates.

Every metric comes from the one evaluation path (:mod:`pipeline.evaluation.report` and the
functions of :mod:`pipeline.evaluation.forecast`): the same directional accuracy, IC, RMSE,
strategy and Sharpe as the backtest, so live and backtest numbers compare like with like.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from pipeline.evaluation.forecast import directional_accuracy, information_coefficient
from pipeline.evaluation.honesty import stationary_bootstrap_indices
from pipeline.evaluation.report import OutOfSample, baselines, evaluate
from pipeline.monitoring.report import (
    Band,
    PerformanceSection,
    Rolling,
    Status,
    shortfall,
    worst,
)
from pipeline.settings import MonitoringConfig, StrategyConfig

# The track record: rows logged by our own jobs, graded by default. `api` rows come from any
# client of POST /predict (a track record anyone could write), so they are graded only when
# asked for. The order is the preference when one prediction key was logged by several
# sources: the evening's own score before a later replay of that date.
TRACK_RECORD: tuple[str, ...] = ("score", "cycle", "replay")
LOG_SOURCES: tuple[str, ...] = (*TRACK_RECORD, "api")
KEY = ("model_name", "model_version", "ticker", "as_of_date", "horizon")

BAND_METHOD = (
    "stationary bootstrap over the dates of the backtest's out-of-sample predictions, "
    "resamples as long as the live track record (mean block n^(1/3))"
)


def graded(rows: pl.DataFrame, sources: tuple[str, ...] = TRACK_RECORD) -> pl.DataFrame:
    """The logged rows of ``sources``, one per prediction key (the first of ``sources`` that
    logged it wins), so a date logged by score and replay counts once."""
    rank = {source: i for i, source in enumerate(sources)}
    return (
        rows.filter(pl.col("source").is_in(list(sources)))
        .sort(pl.col("source").replace_strict(rank, return_dtype=pl.Int32), maintain_order=True)
        .unique(subset=list(KEY), keep="first", maintain_order=True)
    )


def out_of_sample(rows: pl.DataFrame, date: str, pred: str, real: str) -> OutOfSample:
    """Rows (sorted by date and ticker) as the evaluation path's input."""
    zeros = np.zeros(rows.height)
    return OutOfSample(
        fold=zeros.astype(int),
        dates=rows[date].to_numpy(),
        tickers=rows["ticker"].to_numpy(),
        y_true=rows[real].to_numpy().astype(float),
        y_pred=rows[pred].to_numpy().astype(float),
        last_return=zeros,
    )


def _skill(oos: OutOfSample, groups: np.ndarray | None) -> tuple[float, float]:
    """(directional accuracy, IC): per date then averaged when ``groups`` (a panel)."""
    return (
        directional_accuracy(oos.y_true, oos.y_pred),
        information_coefficient(oos.y_true, oos.y_pred, groups),
    )


def _date_slices(dates: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Distinct sorted dates and, for each, the positions of its rows."""
    udates, inverse = np.unique(dates, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=udates.size))[:-1]
    return udates, np.split(order, bounds)


def _band(values: np.ndarray, cfg: MonitoringConfig) -> Band:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return Band(alert_below=None, warn_below=None, median=None, high=None)
    q = [cfg.band_alert_quantile, cfg.band_warn_quantile, 0.5, 1.0 - cfg.band_warn_quantile]
    alert, warn, median, high = (float(x) for x in np.quantile(v, q))
    return Band(alert_below=alert, warn_below=warn, median=median, high=high)


def bootstrap_band(
    backtest: OutOfSample, n_dates: int, cfg: MonitoringConfig, seed: int
) -> dict[str, Band]:
    """Bands of directional accuracy and IC over ``n_dates`` dates drawn from the backtest.

    Dates (with all their rows) are resampled in blocks, so the serial dependence of the
    backtest's errors survives; a resample longer than the backtest chains several.
    """
    udates, slices = _date_slices(backtest.dates)
    panel = len(np.unique(backtest.tickers)) > 1
    rng = np.random.default_rng(seed)
    chain = math.ceil(n_dates / udates.size)
    block = max(1.0, n_dates ** (1.0 / 3.0))
    idx = stationary_bootstrap_indices(udates.size, cfg.band_samples * chain, block, rng)
    idx = idx.reshape(cfg.band_samples, chain * udates.size)[:, :n_dates]
    da, ic = np.empty(cfg.band_samples), np.empty(cfg.band_samples)
    for b, picks in enumerate(idx):
        rows = np.concatenate([slices[d] for d in picks])
        # Positions, not dates, group a panel's rows: a date drawn twice is two dates.
        groups = np.repeat(np.arange(picks.size), [slices[d].size for d in picks])
        da[b], ic[b] = _skill(backtest.select(rows), groups if panel else None)
    return {"directional_accuracy": _band(da, cfg), "ic": _band(ic, cfg)}


def rolling_view(oos: OutOfSample, window: int) -> Rolling:
    """Directional accuracy and IC over the last ``window`` dates, at every date after."""
    udates, slices = _date_slices(oos.dates)
    panel = len(np.unique(oos.tickers)) > 1
    dates, da, ic = [], [], []
    for end in range(window, udates.size + 1):
        rows = np.concatenate(slices[end - window : end])
        part = oos.select(rows)
        a, c = _skill(part, part.dates if panel else None)
        dates.append(str(udates[end - 1]))
        da.append(a)
        ic.append(c)
    return Rolling(window=window, dates=dates, directional_accuracy=da, ic=ic)


def _status(da: float, ic: float, band: dict[str, Band] | None) -> Status:
    """The worse of DA and IC against their bands; ``unavailable`` with nothing to judge."""
    statuses: list[Status] = []
    for value, name in ((da, "directional_accuracy"), (ic, "ic")):
        b = (band or {}).get(name)
        if b is None or not math.isfinite(value):
            continue
        if b.warn_below is not None and b.alert_below is not None:
            statuses.append(shortfall(value, b.warn_below, b.alert_below))
    return worst(statuses) if statuses else "unavailable"


def performance_section(
    rows: pl.DataFrame,
    backtest: pl.DataFrame | None,
    cfg: MonitoringConfig,
    strategy: StrategyConfig,
    horizon: int,
    seed: int,
    missing: str = "no backtest predictions to compare with",
    sources: tuple[str, ...] = TRACK_RECORD,
) -> PerformanceSection:
    """Live metrics of ``rows`` (this version's logged predictions with a known realised
    return, of ``sources``: see :func:`graded`) and their status against the band of
    ``backtest`` (date, ticker, prediction, realised); ``insufficient`` below
    ``cfg.min_rows`` rows, ``unavailable`` without a backtest (``missing`` says why)."""
    n = rows.height
    span = {
        "first_date": str(rows["as_of_date"].min()) if n else None,
        "last_date": str(rows["as_of_date"].max()) if n else None,
    }
    if n < cfg.min_rows:
        why = (
            f"{n} realised prediction(s) of this version from {', '.join(sources)}, "
            f"fewer than min_rows={cfg.min_rows}"
        )
        return PerformanceSection(
            status="insufficient", n=n, sources=list(sources), reason=why, **span
        )
    live = out_of_sample(rows.sort("as_of_date", "ticker"), "as_of_date", "prediction", "realised")
    m = evaluate(live, strategy, horizon)
    base = baselines(live, strategy, horizon)
    band = None
    if backtest is not None and backtest.height:
        reference = out_of_sample(backtest.sort("date", "ticker"), "date", "prediction", "realised")
        band = bootstrap_band(reference, len(np.unique(live.dates)), cfg, seed)
    return PerformanceSection(
        status=_status(_nan(m.directional_accuracy), _nan(m.ic), band),
        n=n,
        sources=list(sources),
        directional_accuracy=m.directional_accuracy,
        ic=m.ic,
        rank_ic=m.rank_ic,
        rmse=m.rmse,
        rmse_zero=base.zero_return.rmse,
        strategy_total_return=m.total_return,
        strategy_sharpe=m.sharpe,
        buy_and_hold_total_return=base.buy_and_hold.total_return,
        band=band,
        band_method=BAND_METHOD if band else None,
        rolling=rolling_view(live, cfg.rolling_window),
        reason=None if band else missing,
        **span,
    )


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
