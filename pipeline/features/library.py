"""Feature primitives: pure functions from expressions to an expression.

No I/O, no ``collect``: every function only composes Polars expressions, and every one is
causal, i.e. the value at row t depends on rows <= t only. Windows count rows (trading days),
not calendar days. Per-ticker partitioning is applied once, by the engine, with ``.over``.
"""

from __future__ import annotations

import polars as pl


def log_return(close: pl.Expr, *, window: int) -> pl.Expr:
    """log(close_t / close_{t-window})."""
    return (close / close.shift(window)).log()


def simple_return(close: pl.Expr, *, window: int) -> pl.Expr:
    """close_t / close_{t-window} - 1."""
    return close / close.shift(window) - 1.0


def lag(x: pl.Expr, *, periods: int) -> pl.Expr:
    """x_{t-periods}; ``periods`` must be >= 1 (a negative lag would read the future)."""
    if periods < 1:
        raise ValueError(f"lag periods must be >= 1, got {periods}")
    return x.shift(periods)


def rolling_mean(x: pl.Expr, *, window: int) -> pl.Expr:
    """Trailing mean over the last ``window`` rows (null until the window is full)."""
    return x.rolling_mean(window)


def rolling_std(x: pl.Expr, *, window: int) -> pl.Expr:
    """Trailing sample standard deviation (ddof=1) over the last ``window`` rows."""
    return x.rolling_std(window, ddof=1)


def rolling_zscore(x: pl.Expr, *, window: int) -> pl.Expr:
    """(x_t - trailing mean) / trailing std, both over the last ``window`` rows including t."""
    return (x - x.rolling_mean(window)) / x.rolling_std(window, ddof=1)


def high_low_range(high: pl.Expr, low: pl.Expr, close: pl.Expr) -> pl.Expr:
    """Intraday range relative to the close: (high - low) / close."""
    return (high - low) / close


def forward_log_return(close: pl.Expr, *, horizon: int) -> pl.Expr:
    """The target: log(close_{t+horizon} / close_t). The only forward-looking expression."""
    return (close.shift(-horizon) / close).log()
