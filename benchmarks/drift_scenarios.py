"""Seeded price series for the drift-detector benchmark (``test_bench_drift.py``).

Every series is daily OHLCV on business days with the benchmark's close joined by date as
``bench_close`` (what the market features read), sorted by (ticker, date). A scenario is a
**null** series (nothing changes) with one **planted change** from a known date on: every row
before that date is identical to the null's, so the training rows never see the change.

Nulls:

* ``random walk``: log return = drift + market (beta 1) + constant idiosyncratic volatility
  (2% a day; the market 1.1%).
* ``GARCH``: the same with GARCH(1,1) idiosyncratic volatility (persistence 0.98, so calm and
  turbulent stretches last for months); the intraday excursions and the volume follow the
  day's volatility, as in real data.
* real NVDA (``data/sample/NVDA.csv`` with SPY's close), the model cut at 2025-01-01.

Log volume is a persistent level (AR(1), phi 0.97, sd 0.3) plus daily noise (sd 0.4), so the
volume level wanders as real volume does instead of sitting on one value.

Changes (:func:`scale_returns`, :func:`shift_mean`, :func:`scale_volume`,
:func:`decouple_benchmark`) rebuild the rows from the change on. Scaling volatility scales
every price's log distance from the previous close (the close-to-close return, the open gap
and the high/low excursions alike), so the bars stay consistent: ``high >= max(open, close)``
and ``low <= min(open, close)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from conftest import make_panel

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
START = "2000-01-03"
TRAIN_DAYS = 2500  # business days before the change (~10 years), the feature warm-up included
NVDA_CUT = dt.date(2025, 1, 1)
PRICES = ("open", "high", "low", "close")
MARKET_MU, MARKET_SIGMA = 0.0003, 0.011  # the index's daily log return
IDIO_SIGMA = 0.02  # the ticker's idiosyncratic daily volatility (unconditional for GARCH)
PANEL_TICKERS = 5
PANEL_SHOCKED = "T0002"  # the panel ticker whose volatility triples


@dataclass(frozen=True)
class Series:
    """One generated series: its bars and the first date the detector should not know."""

    name: str
    bars: pl.DataFrame  # ticker, date, open, high, low, close, volume, bench_close
    change: dt.date  # first changed date; for a null the first date after the training rows
    shocked: tuple[str, ...] = ()  # tickers the change applies to (panel scenarios)


def business_days(n: int, start: str = START) -> np.ndarray:
    """``n`` consecutive business days (Mon-Fri) from ``start``."""
    return np.busday_offset(np.datetime64(start, "D"), np.arange(n), roll="forward")


def garch_path(
    rng: np.random.Generator, n: int, sigma: float = IDIO_SIGMA, a: float = 0.08, b: float = 0.90
) -> tuple[np.ndarray, np.ndarray]:
    """GARCH(1,1) shocks and their conditional volatility, unconditional volatility ``sigma``:
    ``h_t = w + a * eps_{t-1}^2 + b * h_{t-1}``, ``eps_t = sqrt(h_t) * z_t``."""
    w = sigma**2 * (1.0 - a - b)
    z = rng.standard_normal(n)
    eps, vol = np.empty(n), np.empty(n)
    h = sigma**2
    for t in range(n):
        vol[t] = np.sqrt(h)
        eps[t] = vol[t] * z[t]
        h = w + a * eps[t] ** 2 + b * h
    return eps, vol


def log_volume(rng: np.random.Generator, n: int, phi: float = 0.97, sd: float = 0.3) -> np.ndarray:
    """A persistent AR(1) level (stationary sd ``sd``) plus daily noise (sd 0.4), around 1e7."""
    shocks = rng.normal(0.0, sd * np.sqrt(1.0 - phi**2), n)
    level = np.empty(n)
    level[0] = rng.normal(0.0, sd)
    for t in range(1, n):
        level[t] = phi * level[t - 1] + shocks[t]
    return np.log(1e7) + level + rng.normal(0.0, 0.4, n)


def bars_from(
    rng: np.random.Generator,
    logret: np.ndarray,
    sigma: np.ndarray,
    volume: np.ndarray,
    market: np.ndarray,
    ticker: str = "T",
) -> pl.DataFrame:
    """Bars from close-to-close log returns: the open gaps from the previous close and the
    high/low wrap open and close with excursions proportional to the day's ``sigma``."""
    n = logret.size
    close = 50.0 * np.exp(np.cumsum(logret))
    prev = np.r_[50.0, close[:-1]]
    open_ = prev * np.exp(0.3 * sigma * rng.standard_normal(n))
    high = np.maximum(open_, close) * np.exp(np.abs(0.5 * sigma * rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.5 * sigma * rng.standard_normal(n)))
    return pl.DataFrame(
        {
            "ticker": [ticker] * n,
            "date": pl.Series(business_days(n), dtype=pl.Date),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": np.exp(volume),
            "bench_close": 1000.0 * np.exp(np.cumsum(market)),
        }
    )


def random_walk(seed: int, days: int) -> pl.DataFrame:
    """The constant-volatility null: ``days`` bars of one ticker with market beta 1."""
    rng = np.random.default_rng(seed)
    market = rng.normal(MARKET_MU, MARKET_SIGMA, days)
    logret = 0.0002 + market + IDIO_SIGMA * rng.standard_normal(days)
    total = np.full(days, np.hypot(MARKET_SIGMA, IDIO_SIGMA))
    return bars_from(rng, logret, total, log_volume(rng, days), market)


def garch(seed: int, days: int) -> pl.DataFrame:
    """The volatility-clustering null: GARCH(1,1) idiosyncratic shocks; the excursions and
    the volume (elasticity 0.5 to the day's volatility) move with the conditional volatility."""
    rng = np.random.default_rng(seed)
    market = rng.normal(MARKET_MU, MARKET_SIGMA, days)
    eps, vol = garch_path(rng, days)
    logret = 0.0002 + market + eps
    total = np.hypot(MARKET_SIGMA, vol)
    volume = log_volume(rng, days) + 0.5 * np.log(vol / IDIO_SIGMA)
    return bars_from(rng, logret, total, volume, market)


def _after(bars: pl.DataFrame, at: dt.date, tickers: Collection[str] | None) -> pl.Expr:
    picked = pl.lit(True) if tickers is None else pl.col("ticker").is_in(list(tickers))
    return (pl.col("date") >= at) & picked


def _rescaled(prices: dict[str, np.ndarray], after: np.ndarray, k: float) -> dict[str, np.ndarray]:
    """One ticker's prices (date order) with every log distance from the previous close
    multiplied by ``k`` on the ``after`` rows (a tail), the close chained from the last
    unchanged close."""
    close = prices["close"]
    first = int(np.argmax(after))
    if not after.any() or first == 0:
        return prices
    r = np.log(close[1:] / close[:-1])
    new_close = close.copy()
    new_close[first:] = close[first - 1] * np.exp(np.cumsum(k * r[first - 1 :]))
    out = {"close": new_close}
    for name in ("open", "high", "low"):
        p = prices[name].copy()
        p[first:] = new_close[first - 1 : -1] * np.exp(
            k * np.log(p[first:] / close[first - 1 : -1])
        )
        out[name] = p
    return out


def scale_returns(
    bars: pl.DataFrame, at: dt.date, k: float, tickers: Collection[str] | None = None
) -> pl.DataFrame:
    """Volatility x ``k`` from ``at`` on (for ``tickers``, default all): every price rebuilt
    from its scaled log distance to the previous close; volume and benchmark unchanged."""
    parts = []
    for part in bars.sort("ticker", "date").partition_by("ticker", maintain_order=True):
        after = part.select(_after(part, at, tickers)).to_series().to_numpy()
        new = _rescaled({p: part[p].to_numpy() for p in PRICES}, after, k)
        parts.append(part.with_columns(**{p: pl.Series(v) for p, v in new.items()}))
    return pl.concat(parts)


def shift_mean(bars: pl.DataFrame, at: dt.date, per_day: float) -> pl.DataFrame:
    """Every log return (close to close, and the open gap) ``per_day`` higher from ``at`` on:
    the n-th changed bar's prices times ``exp(n * per_day)``; the intraday range unchanged."""
    n = (pl.col("date") >= at).cast(pl.Int64).cum_sum().over("ticker")
    factor = (n.cast(pl.Float64) * per_day).exp()
    return bars.with_columns(*(pl.col(p) * factor for p in PRICES))


def scale_volume(bars: pl.DataFrame, at: dt.date, k: float) -> pl.DataFrame:
    """Volume x ``k`` from ``at`` on: a new level, the day-to-day pattern unchanged."""
    return bars.with_columns(
        pl.when(pl.col("date") >= at).then(pl.col("volume") * k).otherwise(pl.col("volume"))
    )


def decouple_benchmark(bars: pl.DataFrame, at: dt.date, seed: int) -> pl.DataFrame:
    """The benchmark's log returns replaced from ``at`` on by independent draws of the same
    law: the ticker unchanged, its correlation (and beta) to the benchmark drops to 0."""
    dates = bars["date"].unique().sort()
    after = (dates >= at).to_numpy()
    bench = bars.group_by("date").agg(pl.col("bench_close").first()).sort("date")
    lr = np.diff(np.log(bench["bench_close"].to_numpy()), prepend=np.nan)
    lr[after] = np.random.default_rng(seed + 7_919).normal(MARKET_MU, MARKET_SIGMA, after.sum())
    first = int(np.argmax(after))
    level = bench["bench_close"].to_numpy().copy()
    level[first:] = level[first - 1] * np.exp(np.cumsum(lr[first:]))
    new = pl.DataFrame({"date": dates, "__bench__": level})
    joined = bars.join(new, on="date", how="left", maintain_order="left")
    return joined.with_columns(bench_close=pl.col("__bench__")).drop("__bench__")


def change_date(days: int = TRAIN_DAYS) -> dt.date:
    """The first date after ``days`` business days of history: where changes start."""
    return business_days(days + 1)[-1].astype(dt.date)


Generator = Callable[[int, int], Series]  # (seed, days after the change) -> series


def _planted(name: str, change: Callable[[pl.DataFrame, dt.date, int], pl.DataFrame]) -> Generator:
    def make(seed: int, after: int) -> Series:
        at = change_date()
        return Series(name, change(random_walk(seed, TRAIN_DAYS + after), at, seed), at)

    return make


def _null(name: str, make: Callable[[int, int], pl.DataFrame]) -> Generator:
    return lambda seed, after: Series(name, make(seed, TRAIN_DAYS + after), change_date())


def panel_vol(seed: int, after: int, k: float = 3.0) -> Series:
    """``PANEL_TICKERS`` tickers of :func:`conftest.make_panel`; ``PANEL_SHOCKED``'s
    volatility x ``k`` from the change on, the others unchanged."""
    at = change_date()
    panel = make_panel(PANEL_TICKERS, TRAIN_DAYS + after, seed=seed, start=START)
    bars = scale_returns(panel, at, k, tickers={PANEL_SHOCKED})
    return Series(f"panel: {PANEL_SHOCKED} vol x{k:g}", bars, at, (PANEL_SHOCKED,))


MEAN_SHIFT = 0.5 * IDIO_SIGMA  # +1% a day: half the idiosyncratic daily volatility

PLANTED: dict[str, Generator] = {
    "vol x3": _planted("vol x3", lambda b, at, _: scale_returns(b, at, 3.0)),
    "vol x2": _planted("vol x2", lambda b, at, _: scale_returns(b, at, 2.0)),
    "vol x1.5": _planted("vol x1.5", lambda b, at, _: scale_returns(b, at, 1.5)),
    "volume x10": _planted("volume x10", lambda b, at, _: scale_volume(b, at, 10.0)),
    "mean +1%/day": _planted("mean +1%/day", lambda b, at, _: shift_mean(b, at, MEAN_SHIFT)),
    "benchmark decoupled": _planted("benchmark decoupled", decouple_benchmark),
    "panel vol x3": panel_vol,
}
NULLS: dict[str, Generator] = {
    "random walk": _null("random walk", random_walk),
    "GARCH": _null("GARCH", garch),
}


def nvda(scale: float = 1.0, volume: float = 1.0, cut: dt.date = NVDA_CUT) -> Series:
    """Real NVDA bars with SPY's close joined by date as ``bench_close``; from ``cut`` on,
    every return times ``scale`` (prices rebuilt) and the volume times ``volume``."""
    bars = pl.read_csv(SAMPLE / "NVDA.csv", try_parse_dates=True)
    spy = pl.read_csv(SAMPLE / "SPY.csv", try_parse_dates=True)
    bars = (
        bars.join(spy.select("date", bench_close="close"), on="date", how="left")
        .with_columns(ticker=pl.lit("NVDA"))
        .select("ticker", "date", "open", "high", "low", "close", "volume", "bench_close")
        .sort("date")
    )
    if scale != 1.0:
        bars = scale_returns(bars, cut, scale)
    if volume != 1.0:
        bars = scale_volume(bars, cut, volume)
    first = bars.filter(pl.col("date") >= cut)["date"].min()
    assert isinstance(first, dt.date)
    changes = [f"returns x{scale:g}"] * (scale != 1.0) + [f"volume x{volume:g}"] * (volume != 1.0)
    return Series(" ".join(["real NVDA", *changes]), bars, first)
