"""Shared fixtures for the feature benchmarks: a seeded synthetic OHLCV panel and its size knobs.

The panel size comes from environment variables so CI can run a small panel and a user the
big one::

    STOCKPIPE_BENCH_TICKERS=500 STOCKPIPE_BENCH_DAYS=5000 pytest benchmarks/

Default: 100 tickers x 5,000 business days = 500,000 rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from pipeline.features.spec import FeatureDef, FeaturesConfig, build_feature_defs

DEFAULT_TICKERS = 100
DEFAULT_DAYS = 5_000
DEFAULT_SEED = 20_240_601
DEFAULT_ROUNDS = 5


def env_int(name: str, default: int) -> int:
    """An integer knob from the environment; empty or unset means ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = int(raw.replace("_", ""))
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


@dataclass(frozen=True)
class BenchConfig:
    """Panel size and timing knobs, read from STOCKPIPE_BENCH_* environment variables."""

    tickers: int
    days: int
    seed: int
    rounds: int

    @property
    def rows(self) -> int:
        return self.tickers * self.days

    @classmethod
    def from_env(cls) -> BenchConfig:
        return cls(
            tickers=env_int("STOCKPIPE_BENCH_TICKERS", DEFAULT_TICKERS),
            days=env_int("STOCKPIPE_BENCH_DAYS", DEFAULT_DAYS),
            seed=env_int("STOCKPIPE_BENCH_SEED", DEFAULT_SEED),
            rounds=env_int("STOCKPIPE_BENCH_ROUNDS", DEFAULT_ROUNDS),
        )


def make_panel(
    n_tickers: int, n_days: int, *, seed: int = DEFAULT_SEED, start: str = "2000-01-03"
) -> pl.DataFrame:
    """A seeded synthetic daily OHLCV panel, ``n_tickers * n_days`` rows, sorted (ticker, date).

    Close is a geometric random walk per ticker (own drift and volatility); open gaps from the
    previous close; high/low wrap open and close with a non-negative excursion, so
    ``high >= max(open, close)`` and ``low <= min(open, close)``; volume is log-normal (> 0).
    Dates are consecutive business days (Mon-Fri, no holiday calendar).
    """
    if n_tickers < 1 or n_days < 1:
        raise ValueError(f"need >= 1 ticker and day, got {n_tickers} x {n_days}")
    rng = np.random.default_rng(seed)
    shape = (n_tickers, n_days)

    vol = rng.uniform(0.008, 0.03, size=(n_tickers, 1))  # daily volatility per ticker
    drift = rng.normal(0.0002, 0.0002, size=(n_tickers, 1))
    start_price = rng.uniform(5.0, 500.0, size=(n_tickers, 1))
    logret = drift - 0.5 * vol**2 + vol * rng.standard_normal(shape)
    logret[:, 0] = 0.0
    close = start_price * np.exp(np.cumsum(logret, axis=1))

    prev_close = np.empty_like(close)
    prev_close[:, 0] = start_price[:, 0]
    prev_close[:, 1:] = close[:, :-1]
    open_ = prev_close * np.exp(0.3 * vol * rng.standard_normal(shape))
    high = np.maximum(open_, close) * np.exp(np.abs(0.5 * vol * rng.standard_normal(shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(0.5 * vol * rng.standard_normal(shape)))
    base_volume = rng.uniform(1e5, 5e7, size=(n_tickers, 1))
    volume = base_volume * rng.lognormal(0.0, 0.5, size=shape)

    dates = np.busday_offset(np.datetime64(start, "D"), np.arange(n_days), roll="forward")
    names = np.array([f"T{i:04d}" for i in range(n_tickers)], dtype=object)
    return pl.DataFrame(
        {
            "ticker": pl.Series(np.repeat(names, n_days), dtype=pl.String),
            "date": pl.Series(np.tile(dates, n_tickers), dtype=pl.Date),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
        }
    )


@dataclass
class BenchRecord:
    """What one engine's benchmark left behind, for the ratio and the end-of-run summary."""

    rows: int
    mean_s: float
    extra_info: dict[str, Any]


@dataclass
class BenchResults:
    """Session-wide scratchpad: each benchmark records its mean; pairs yield the speed ratios.

    Keys: ``polars`` (the engine as production calls it), ``pandas`` (the reference) and any
    diagnostic variant. The ratio is written into the ``extra_info`` dicts of the benchmarks
    already recorded, so it lands in ``--benchmark-json`` whichever test ran first.
    """

    records: dict[str, BenchRecord] = field(default_factory=dict)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, engine: str, rows: int, mean_s: float, extra_info: dict[str, Any]) -> None:
        extra_info.update(rows=rows, mean_s=mean_s, rows_per_s=rows / mean_s)
        self.records[engine] = BenchRecord(rows, mean_s, extra_info)
        if engine in self.memory:
            extra_info.update({f"mem_{k}": v for k, v in self.memory[engine].items()})
        self._update_ratios()

    def speedup(self, engine: str) -> float | None:
        """pandas mean / ``engine`` mean: > 1 means ``engine`` is faster than pandas."""
        rec, ref = self.records.get(engine), self.records.get("pandas")
        if rec is None or ref is None:
            return None
        return ref.mean_s / rec.mean_s

    def _update_ratios(self) -> None:
        main = self.speedup("polars")
        for engine, rec in self.records.items():
            ratio = self.speedup(engine)
            if ratio is not None:
                rec.extra_info["speedup_vs_pandas"] = ratio
            if main is not None:
                rec.extra_info["speedup_polars_vs_pandas"] = main

    def attach_memory(self, engine: str, info: dict[str, Any]) -> None:
        self.memory[engine] = info
        rec = self.records.get(engine)
        if rec is not None:
            rec.extra_info.update({f"mem_{k}": v for k, v in info.items()})


_RESULTS = BenchResults()


@pytest.fixture(scope="session")
def bench_results() -> BenchResults:
    return _RESULTS


@pytest.fixture(scope="session")
def bench_config() -> BenchConfig:
    return BenchConfig.from_env()


@pytest.fixture(scope="session")
def panel(bench_config: BenchConfig) -> pl.DataFrame:
    """The benchmark panel (polars), sized by STOCKPIPE_BENCH_TICKERS / _DAYS / _SEED."""
    return make_panel(bench_config.tickers, bench_config.days, seed=bench_config.seed)


@pytest.fixture(scope="session")
def panel_pandas(panel: pl.DataFrame) -> pd.DataFrame:
    """The same panel as a pandas DataFrame (conversion is outside every timed region)."""
    return panel.to_pandas()


@pytest.fixture(scope="session")
def feature_defs() -> list[FeatureDef]:
    """The default feature set, exactly as training builds it."""
    return build_feature_defs(FeaturesConfig())


def pytest_report_header(config: pytest.Config) -> list[str]:
    cfg = BenchConfig.from_env()
    return [
        f"stockpipe bench panel: {cfg.tickers} tickers x {cfg.days} days = {cfg.rows:,} rows "
        f"(seed {cfg.seed}, rounds {cfg.rounds}); "
        f"polars {pl.__version__}, pandas {pd.__version__}, numpy {np.__version__}"
    ]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    res = _RESULTS
    if not res.records and not res.memory:
        return
    tr = terminalreporter
    tr.section("stockpipe feature benchmark")
    for engine, rec in res.records.items():
        ratio = res.speedup(engine)
        vs = f", {ratio:.2f}x pandas speed" if ratio is not None and engine != "pandas" else ""
        tr.write_line(
            f"{engine:>17}: {rec.rows:,} rows, mean {rec.mean_s * 1e3:,.1f} ms, "
            f"{rec.rows / rec.mean_s / 1e6:,.2f} M rows/s{vs}"
        )
    for engine, info in res.memory.items():
        tr.write_line(
            f"{engine + ' memory':>17}: peak RSS {info['peak_rss_mb']:,.0f} MB during one call, "
            f"+{info['delta_mb']:,.0f} MB over the {info['baseline_rss_mb']:,.0f} MB before it "
            f"(input frame {info['input_mb']:,.0f} MB; {info['method']})"
        )
