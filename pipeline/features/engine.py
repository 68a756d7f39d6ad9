"""Apply feature defs per ticker on a (Lazy)Frame of prices; the same code trains and scores."""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from pipeline.features.library import forward_log_return
from pipeline.features.spec import FeatureDef

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

TICKER = "ticker"
DATE = "date"
TARGET = "target"


def add_features(frame: FrameT, defs: list[FeatureDef]) -> FrameT:
    """Sort by (ticker, date) and append one column per def, partitioned by ticker.

    Partitioning with ``.over(ticker)`` is what stops a window from crossing tickers;
    cross-sectional defs are then computed ``.over(date)``.
    """
    per_ticker = [d.expr.over(TICKER).alias(d.name) for d in defs if d.partition == "ticker"]
    per_date = [d.expr.over(DATE).alias(d.name) for d in defs if d.partition == "date"]
    out = frame.sort(TICKER, DATE).with_columns(per_ticker)
    # Cross-sectional features read same-date values of features computed just above.
    return out.with_columns(per_date) if per_date else out


def add_target(frame: FrameT, horizon: int) -> FrameT:
    """Append the forward log return over ``horizon`` rows, per ticker (null at the tail)."""
    expr = forward_log_return(pl.col("close"), horizon=horizon).over(TICKER).alias(TARGET)
    return frame.sort(TICKER, DATE).with_columns(expr)
