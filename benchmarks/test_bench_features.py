"""Feature benchmark: the shipped feature set, feature engine against a pandas reference.

    pytest benchmarks/                                                   # 100 x 5,000 panel
    STOCKPIPE_BENCH_TICKERS=500 STOCKPIPE_BENCH_DAYS=5000 pytest benchmarks/

The feature set is ``conf/base/model.yaml`` as training resolves it (``shipped_feature_set``).
The timed benchmarks share one ``group`` so pytest-benchmark prints them in one table; each
records rows/s and the speed ratio in ``extra_info`` (see ``--benchmark-json``). Peak memory is
measured in a fresh subprocess (this file run as a script, see ``measure_peak_memory``), because
Polars allocates in Rust where ``tracemalloc`` cannot see it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from pandas_reference import pandas_features, window_std
from polars_reference import floor_features, polars_features

from pipeline.features.engine import add_features, collect
from pipeline.features.spec import FeatureDef

if TYPE_CHECKING:
    from conftest import BenchConfig, BenchResults, FeatureSet

GROUP = "features"
# Engine and reference must agree to RTOL. The absolute floor only matters for values that
# sit near zero while being computed from much larger intermediates: the rolling skew of log
# returns (third moments of running sums), the relative MACD (EMA_fast / EMA_slow - 1, both
# EMAs ~1e2), Bollinger %B near the lower band and rolling means of log returns. There the
# relative gap can reach ~2e-7, but on 2.5M rows no value beyond RTOL differs by more than
# 3.4e-14 absolute (skew; MACD: 9e-16). 1e-13 is ~1e-11 of a typical daily log return or
# MACD value (~1e-2) and ~5e-13 of a typical 60-day skew (~0.2).
RTOL = 1e-9
ATOL = 1e-13
# Implementations whose peak RSS is probed: the engine, the references and the floor.
# engine_float32: the same set with the opt-in `features.dtype: float32`.
MEMORY_ENGINES = ["engine", "engine_float32", "polars", "floor", "pandas"]


def run_engine(frame: pl.DataFrame, defs: list[FeatureDef]) -> pl.DataFrame:
    """The engine exactly as production runs it (``pipeline.features.engine.collect``)."""
    return collect(add_features(frame.lazy(), defs))


def _record(benchmark: Any, results: BenchResults, engine: str, rows: int) -> None:
    meta = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if meta is None:
        return
    results.record(engine, rows, float(meta.stats.mean), benchmark.extra_info)


# --- timed benchmarks -------------------------------------------------------------------------


@pytest.mark.benchmark(group=GROUP)
def test_bench_engine(
    benchmark: Any,
    panel: pl.DataFrame,
    feature_defs: list[FeatureDef],
    bench_config: BenchConfig,
    bench_results: BenchResults,
) -> None:
    out = benchmark.pedantic(
        run_engine, args=(panel, feature_defs), rounds=bench_config.rounds, warmup_rounds=1
    )
    assert out.shape == (panel.height, panel.width + len(feature_defs))
    benchmark.extra_info["features"] = len(feature_defs)
    _record(benchmark, bench_results, "engine", panel.height)


@pytest.mark.benchmark(group=GROUP)
def test_bench_pandas_reference(
    benchmark: Any,
    panel_pandas: pd.DataFrame,
    feature_set: FeatureSet,
    bench_config: BenchConfig,
    bench_results: BenchResults,
) -> None:
    out = benchmark.pedantic(
        pandas_features,
        args=(panel_pandas, feature_set.config, feature_set.columns),
        rounds=bench_config.rounds,
        warmup_rounds=1,
    )
    assert out.shape == (len(panel_pandas), panel_pandas.shape[1] + len(feature_set.columns))
    benchmark.extra_info["features"] = len(feature_set.columns)
    _record(benchmark, bench_results, "pandas", len(panel_pandas))


# --- correctness ------------------------------------------------------------------------------


def test_feature_set_is_the_shipped_default(feature_set: FeatureSet) -> None:
    """The full model.yaml set: every family it declares, ~40 columns, in training's order."""
    assert [d.name for d in feature_set.defs] == list(feature_set.columns)
    assert len(feature_set.columns) >= 40
    for name in ("rsi_14", "macd_hist_12_26_9", "bb_pctb_20_2", "natr_14", "stoch_d_14_3"):
        assert name in feature_set.columns
    for name in ("obv_ratio_20", "dist_max_close_252", "volume_ratio_20", "cal_month"):
        assert name in feature_set.columns
    assert "beta_spy_60" in feature_set.columns and "corr_spy_60" in feature_set.columns
    assert all(d.partition == "ticker" for d in feature_set.defs)


def test_panel_is_consistent_ohlcv(panel: pl.DataFrame, bench_config: BenchConfig) -> None:
    assert panel.schema == pl.Schema(
        {
            "ticker": pl.String,
            "date": pl.Date,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
            "bench_close": pl.Float64,
        }
    )
    assert panel.height == bench_config.rows
    assert panel.null_count().sum_horizontal().item() == 0
    checks = panel.select(
        (pl.col("high") >= pl.max_horizontal("open", "close")).all().alias("high"),
        (pl.col("low") <= pl.min_horizontal("open", "close")).all().alias("low"),
        (pl.col("low") > 0).all().alias("positive_prices"),
        (pl.col("bench_close") > 0).all().alias("positive_bench"),
        (pl.col("volume") > 0).all().alias("positive_volume"),
        (pl.col("date").dt.weekday() <= 5).all().alias("business_days"),
        (pl.struct("ticker", "date").n_unique() == pl.len()).alias("unique_keys"),
        # one benchmark close per date, whatever the ticker (as joined by date)
        (pl.col("bench_close").n_unique().over("date") == 1).all().alias("bench_by_date"),
    )
    assert all(checks.row(0)), dict(zip(checks.columns, checks.row(0), strict=True))


def test_engine_matches_pandas_reference(
    panel: pl.DataFrame, panel_pandas: pd.DataFrame, feature_set: FeatureSet
) -> None:
    """Every feature column: same missing positions (null or NaN), values to RTOL / ATOL."""
    got = run_engine(panel, feature_set.defs)
    ref = pandas_features(panel_pandas, feature_set.config, feature_set.columns)
    assert list(ref.columns) == [*panel_pandas.columns, *feature_set.columns]
    assert got.columns == list(ref.columns)
    np.testing.assert_array_equal(got["ticker"].to_numpy(), ref["ticker"].to_numpy())
    np.testing.assert_array_equal(
        got["date"].to_numpy(), ref["date"].to_numpy().astype("datetime64[D]")
    )
    for name in feature_set.columns:
        ours = got[name].cast(pl.Float64).to_numpy()  # nulls -> NaN: both mean missing
        theirs = ref[name].to_numpy(dtype=np.float64)
        missing = np.isnan(ours)
        np.testing.assert_array_equal(
            missing, np.isnan(theirs), err_msg=f"{name}: missing (null/NaN) positions differ"
        )
        assert not missing.all(), f"{name}: no values at all"
        assert np.isfinite(ours[~missing]).all(), f"{name}: non-finite values"
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=name)


def test_reference_window_std_is_exact(panel: pl.DataFrame) -> None:
    """The reference's two-pass std (Bollinger) against numpy's std of each full window."""
    window, tickers = 20, panel.get_column("ticker").unique(maintain_order=True)[:5]
    for ticker in tickers:
        close = panel.filter(pl.col("ticker") == ticker).get_column("close").to_pandas()
        mean = close.rolling(window).mean()
        got = window_std(close, mean, window, ddof=0).to_numpy()
        exact = sliding_window_view(close.to_numpy(), window).std(axis=-1)
        assert np.isnan(got[: window - 1]).all()
        np.testing.assert_allclose(got[window - 1 :], exact, rtol=1e-12, atol=0)


# --- peak memory ------------------------------------------------------------------------------


def _proc_status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (Linux), or None where there is none."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (VmHWM); Linux >= 4.0 only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _max_rss_kb() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS, kB elsewhere


def measure_peak_memory(engine: str, tickers: int, days: int, seed: int) -> dict[str, Any]:
    """Peak resident memory of one feature build, measured in *this* (fresh) process.

    Builds the panel, frees the generator's temporaries, records the current RSS, resets the
    kernel's RSS high-water mark, runs one feature build (keeping its result alive) and reads
    the high-water mark again. So ``peak_rss_mb`` is the process's largest resident set during
    the call (interpreter, libraries, input frame and the output included) and ``delta_mb`` the
    growth over the RSS just before it. RSS counts what the allocators hold, Rust's (jemalloc)
    and numpy's alike, which ``tracemalloc`` would miss; it also counts freed memory an
    allocator keeps for reuse. Where the high-water mark cannot be reset (not Linux),
    ``peak_rss_mb`` falls back to ``ru_maxrss`` over the whole process lifetime (panel
    generation included: an upper bound) and ``delta_mb`` to its growth during the call.
    """
    from conftest import make_panel, shipped_feature_set

    fs = shipped_feature_set()
    panel = make_panel(tickers, days, seed=seed)
    frame: pl.DataFrame | pd.DataFrame
    build: Callable[[Any], Any]
    if engine in ("engine", "engine_float32"):
        dtype = "float32" if engine == "engine_float32" else "float64"
        defs = [replace(d, dtype=dtype) for d in fs.defs]
        frame, build = panel, lambda f: run_engine(f, defs)
        input_bytes = panel.estimated_size()
    elif engine == "polars":
        frame, build = panel, lambda f: polars_features(f, fs.config, fs.columns)
        input_bytes = panel.estimated_size()
    elif engine == "floor":
        frame, build = panel, lambda f: floor_features(f, len(fs.columns))
        input_bytes = panel.estimated_size()
    elif engine == "pandas":
        frame, build = panel.to_pandas(), lambda f: pandas_features(f, fs.config, fs.columns)
        input_bytes = int(frame.memory_usage(deep=True).sum())
    else:
        raise ValueError(f"unknown engine {engine!r}")
    del panel
    gc.collect()

    baseline_kb = _proc_status_kb("VmRSS") or _max_rss_kb()
    reset = _reset_peak_rss()
    start = time.perf_counter()
    out = build(frame)
    seconds = time.perf_counter() - start
    hwm_kb = _proc_status_kb("VmHWM") if reset else None
    peak_kb = hwm_kb if hwm_kb is not None else _max_rss_kb()
    method = (
        "VmHWM reset just before the call"
        if hwm_kb is not None
        else "ru_maxrss over the whole process"
    )
    assert len(out) == tickers * days
    return {
        "engine": engine,
        "rows": tickers * days,
        "peak_rss_mb": peak_kb / 1024,
        "baseline_rss_mb": baseline_kb / 1024,
        "delta_mb": (peak_kb - baseline_kb) / 1024,
        "input_mb": input_bytes / 2**20,
        "seconds_first_call": seconds,
        "method": method,
    }


def _measure_in_subprocess(engine: str, cfg: BenchConfig) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--memory",
        engine,
        f"--tickers={cfg.tickers}",
        f"--days={cfg.days}",
        f"--seed={cfg.seed}",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, timeout=600, env=dict(os.environ)
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("engine", MEMORY_ENGINES)
def test_peak_memory(engine: str, bench_config: BenchConfig, bench_results: BenchResults) -> None:
    info = _measure_in_subprocess(engine, bench_config)
    assert info["rows"] == bench_config.rows
    assert info["peak_rss_mb"] >= info["baseline_rss_mb"] > 0
    bench_results.attach_memory(engine, info)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Peak RSS of one feature build (JSON).")
    parser.add_argument("--memory", choices=MEMORY_ENGINES, required=True)
    parser.add_argument("--tickers", type=int, default=100)
    parser.add_argument("--days", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    from conftest import DEFAULT_SEED

    seed = DEFAULT_SEED if args.seed is None else args.seed
    print(json.dumps(measure_peak_memory(args.memory, args.tickers, args.days, seed)))


if __name__ == "__main__":
    main()
