"""Feature primitives: pure functions from expressions to an expression.

No I/O, no ``collect``: every function only composes Polars expressions, and every one is
causal, i.e. the value at row t depends on rows <= t only. Windows count rows (trading days),
not calendar days. Per-ticker partitioning is applied once, by the engine, with ``.over``.
Recursive smoothers (EWM, Wilder) are seeded at the first row and declare, through
``min_samples``, how many rows they need before the seed's weight is negligible.
"""

from __future__ import annotations

import math

import polars as pl

# Recursive features become valid once the weight left on the seed is below this.
RECURSIVE_TOLERANCE = 1e-8


def convergence_rows(alpha: float, tolerance: float = RECURSIVE_TOLERANCE) -> int:
    """Rows after which an exponential smoother's seed weight (1 - alpha)^n < tolerance."""
    if alpha >= 1.0:  # no memory: the value is the input itself
        return 1
    return max(1, math.ceil(math.log(tolerance) / math.log(1.0 - alpha)))


def span_alpha(span: int) -> float:
    """EMA smoothing factor for a span, as in every charting package: 2 / (span + 1)."""
    return 2.0 / (span + 1.0)


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


def rolling_min(x: pl.Expr, *, window: int) -> pl.Expr:
    """Trailing minimum over the last ``window`` rows."""
    return x.rolling_min(window)


def rolling_max(x: pl.Expr, *, window: int) -> pl.Expr:
    """Trailing maximum over the last ``window`` rows."""
    return x.rolling_max(window)


def rolling_sum(x: pl.Expr, *, window: int) -> pl.Expr:
    """Trailing sum over the last ``window`` rows."""
    return x.rolling_sum(window)


def rolling_skew(x: pl.Expr, *, window: int) -> pl.Expr:
    """Trailing sample skewness (bias-corrected, as pandas' ``rolling().skew()``)."""
    return x.rolling_skew(window, bias=False)


def rolling_zscore(x: pl.Expr, *, window: int) -> pl.Expr:
    """(x_t - trailing mean) / trailing std, both over the last ``window`` rows including t."""
    return zscore_from(x, x.rolling_mean(window), x.rolling_std(window, ddof=1))


def zscore_from(x: pl.Expr, mean: pl.Expr, std: pl.Expr) -> pl.Expr:
    """(x - mean) / std: the z-score from a mean and std computed elsewhere (a shared stage)."""
    return (x - mean) / std


def ewm_mean(x: pl.Expr, *, span: int) -> pl.Expr:
    """Recursive EMA y_t = a x_t + (1 - a) y_{t-1}, a = 2/(span+1), seeded at the first row."""
    alpha = span_alpha(span)
    return x.ewm_mean(alpha=alpha, adjust=False, min_samples=convergence_rows(alpha))


def ewm_vol(ret: pl.Expr, *, span: int) -> pl.Expr:
    """RiskMetrics volatility: sqrt of the EMA of squared returns (zero-mean assumption)."""
    alpha = span_alpha(span)
    return (
        (ret * ret).ewm_mean(alpha=alpha, adjust=False, min_samples=convergence_rows(alpha)).sqrt()
    )


def wilder_mean(x: pl.Expr, *, window: int) -> pl.Expr:
    """Wilder's smoothing: an EMA with a = 1/window (RSI and ATR use it)."""
    alpha = 1.0 / window
    return x.ewm_mean(alpha=alpha, adjust=False, min_samples=convergence_rows(alpha))


def rsi(close: pl.Expr, *, window: int) -> pl.Expr:
    """Wilder's RSI in [0, 100]: 100 * avg_gain / (avg_gain + avg_loss)."""
    return rsi_from_delta(close.diff(1), window=window)


def rsi_from_delta(delta: pl.Expr, *, window: int) -> pl.Expr:
    """Wilder's RSI from the close's one-row change (a shared stage)."""
    gain = wilder_mean(delta.clip(lower_bound=0.0), window=window)
    loss = wilder_mean((-delta).clip(lower_bound=0.0), window=window)
    return 100.0 * gain / (gain + loss)


def macd(close: pl.Expr, *, fast: int, slow: int) -> pl.Expr:
    """MACD line in relative form, EMA_fast / EMA_slow - 1, comparable across price levels."""
    return macd_from(ewm_mean(close, span=fast), ewm_mean(close, span=slow))


def macd_from(fast_ema: pl.Expr, slow_ema: pl.Expr) -> pl.Expr:
    """The relative MACD line from the two EMAs (shared stages)."""
    return fast_ema / slow_ema - 1.0


def macd_signal(close: pl.Expr, *, fast: int, slow: int, signal: int) -> pl.Expr:
    """EMA of the MACD line over ``signal`` rows."""
    return ewm_mean(macd(close, fast=fast, slow=slow), span=signal)


def bollinger_pctb(close: pl.Expr, *, window: int, k: float) -> pl.Expr:
    """%B: where the close sits in the band mean +- k * population std (0 = lower, 1 = upper)."""
    return pctb_from(close, close.rolling_mean(window), band_std(close, window=window), k=k)


def bollinger_width(close: pl.Expr, *, window: int, k: float) -> pl.Expr:
    """Bandwidth: (upper - lower) / middle band."""
    return width_from(close.rolling_mean(window), band_std(close, window=window), k=k)


def band_std(close: pl.Expr, *, window: int) -> pl.Expr:
    """The Bollinger band's population std (ddof=0) over the last ``window`` rows."""
    return close.rolling_std(window, ddof=0)


def pctb_from(close: pl.Expr, mid: pl.Expr, sd: pl.Expr, *, k: float) -> pl.Expr:
    """%B from the band's mean and std (shared stages)."""
    return (close - (mid - k * sd)) / (2.0 * k * sd)


def width_from(mid: pl.Expr, sd: pl.Expr, *, k: float) -> pl.Expr:
    """Bandwidth from the band's mean and std (shared stages)."""
    return 2.0 * k * sd / mid


def true_range(high: pl.Expr, low: pl.Expr, close: pl.Expr) -> pl.Expr:
    """max(high - low, |high - close_{t-1}|, |low - close_{t-1}|); high - low on the first row."""
    prev = close.shift(1)
    return pl.max_horizontal(high - low, (high - prev).abs(), (low - prev).abs())


def natr(high: pl.Expr, low: pl.Expr, close: pl.Expr, *, window: int) -> pl.Expr:
    """Normalised ATR (as TA-Lib's NATR): 100 * Wilder-smoothed true range / close."""
    return 100.0 * wilder_mean(true_range(high, low, close), window=window) / close


def stochastic_k(high: pl.Expr, low: pl.Expr, close: pl.Expr, *, window: int) -> pl.Expr:
    """%K in [0, 100]: close within the trailing ``window`` high-low range."""
    lowest, highest = low.rolling_min(window), high.rolling_max(window)
    return 100.0 * (close - lowest) / (highest - lowest)


def obv_ratio(close: pl.Expr, volume: pl.Expr, *, window: int) -> pl.Expr:
    """Windowed on-balance volume: sum(sign(dclose) * volume) / sum(volume) over ``window``.

    The classic OBV is a running total from the first row, so its value depends on how much
    history was loaded and would differ between training and scoring; this ratio does not.
    """
    return obv_ratio_from(obv_signed(close, volume), volume, window=window)


def obv_signed(close: pl.Expr, volume: pl.Expr) -> pl.Expr:
    """The volume signed by the close's change: what on-balance volume adds up."""
    return close.diff(1).sign() * volume


def obv_ratio_from(signed: pl.Expr, volume: pl.Expr, *, window: int) -> pl.Expr:
    """The windowed OBV ratio from the signed volume (a shared stage)."""
    return signed.rolling_sum(window) / volume.rolling_sum(window)


def distance_from_max(x: pl.Expr, *, window: int) -> pl.Expr:
    """x / trailing max - 1 (the drawdown from the trailing peak, <= 0)."""
    return x / x.rolling_max(window) - 1.0


def distance_from_min(x: pl.Expr, *, window: int) -> pl.Expr:
    """x / trailing min - 1 (>= 0)."""
    return x / x.rolling_min(window) - 1.0


def volume_ratio(volume: pl.Expr, *, window: int) -> pl.Expr:
    """volume / trailing mean volume."""
    return ratio_to(volume, volume.rolling_mean(window))


def ratio_to(x: pl.Expr, mean: pl.Expr) -> pl.Expr:
    """x / its trailing mean (a shared stage)."""
    return x / mean


def high_low_range(high: pl.Expr, low: pl.Expr, close: pl.Expr) -> pl.Expr:
    """Intraday range relative to the close: (high - low) / close."""
    return (high - low) / close


def day_of_week(date: pl.Expr) -> pl.Expr:
    """ISO weekday, Monday = 1."""
    return date.dt.weekday().cast(pl.Float64)


def month(date: pl.Expr) -> pl.Expr:
    """Calendar month, 1-12."""
    return date.dt.month().cast(pl.Float64)


def days_to_month_end(date: pl.Expr) -> pl.Expr:
    """Calendar days until the last day of the month (0 on that day); needs the date only."""
    # days_in_month - day: the same integers as (month_end - date), ~7x faster in Polars 2.1
    return (date.dt.days_in_month().cast(pl.Int32) - date.dt.day().cast(pl.Int32)).cast(pl.Float64)


def rolling_beta(ret: pl.Expr, bench: pl.Expr, *, window: int) -> pl.Expr:
    """cov(ret, bench) / var(bench) over the trailing ``window`` rows."""
    return pl.rolling_cov(ret, bench, window_size=window) / bench.rolling_var(window)


def rolling_corr(ret: pl.Expr, bench: pl.Expr, *, window: int) -> pl.Expr:
    """Pearson correlation over the trailing ``window`` rows."""
    return pl.rolling_corr(ret, bench, window_size=window)


def excess_log_return(x: pl.Expr, bench: pl.Expr, *, window: int) -> pl.Expr:
    """The log return over ``window`` rows in excess of the benchmark's."""
    return log_return(x, window=window) - log_return(bench, window=window)


def cross_sectional_rank(x: pl.Expr) -> pl.Expr:
    """Percentile rank among the tickers of one date, in (0, 1]; apply ``.over(date)``.

    NaN (e.g. RSI of a flat ticker) counts as missing, so it cannot spoil the others' ranks.
    """
    clean = x.fill_nan(None)
    return clean.rank("average") / clean.count()


def cross_sectional_zscore(x: pl.Expr) -> pl.Expr:
    """(x - mean) / std among the tickers of one date; apply ``.over(date)``; NaN = missing."""
    clean = x.fill_nan(None)
    return (clean - clean.mean()) / clean.std(ddof=1)


def forward_log_return(close: pl.Expr, *, horizon: int) -> pl.Expr:
    """The target: log(close_{t+horizon} / close_t). The only forward-looking expression."""
    return (close.shift(-horizon) / close).log()
