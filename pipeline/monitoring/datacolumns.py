"""Monitored data columns: levels of the raw data that the model's features cannot see.

The shipped volume features are ratios (volume over its own 5- or 20-day mean, a 20-day
z-score), so a lasting tenfold volume level shows in them for a day or two and then looks
normal again: the model's inputs barely move, yet the data feeding it did. Monitoring the
level itself catches that. The level is a 5-day mean so that one busy day does not count as a
new level; its log makes it scale-free across tickers of very different sizes (each ticker is
also judged against its own training range, see :mod:`pipeline.monitoring.profile`).

Defined once here, and computed the same way on the training rows (``train`` profiles them)
and on the monitored window (``monitor``).
"""

from __future__ import annotations

import numpy as np
import polars as pl

LEVEL_DAYS = 5
VOLUME_LEVEL = f"volume_level_{LEVEL_DAYS}"


def _volume_level() -> pl.Expr:
    mean = pl.col("volume").cast(pl.Float64).rolling_mean(LEVEL_DAYS, min_samples=LEVEL_DAYS)
    # log of a positive mean; a zero-volume stretch gives -inf, which monitoring skips.
    return mean.log().over("ticker").alias(VOLUME_LEVEL)


def data_columns(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """The monitored data columns of ``frame`` (sorted by ticker and date), row-aligned with
    it; none when it has no volume (close-only data)."""
    if "volume" not in frame.columns:
        return {}
    level = frame.select(_volume_level()).to_series().to_numpy().astype(float)
    level[~np.isfinite(level)] = np.nan
    return {VOLUME_LEVEL: level}


def aligned(frame: pl.DataFrame, rows: pl.DataFrame) -> dict[str, np.ndarray]:
    """The data columns of ``frame`` (every price row, sorted by ticker and date) on the
    ``rows`` (ticker, date) it is asked for, in their order: the training rows are a subset
    of the price rows (warm-up and unlabelled rows left out)."""
    columns = data_columns(frame)
    if not columns:
        return {}
    keyed = frame.select("ticker", "date").with_columns(
        **{name: pl.Series(values) for name, values in columns.items()}
    )
    joined = rows.select("ticker", "date").join(
        keyed, on=["ticker", "date"], how="left", maintain_order="left"
    )
    return {name: joined[name].to_numpy().astype(float) for name in columns}
