"""Feature benchmark: the Polars feature engine against a hand-written pandas reference.

    pytest benchmarks/                                                   # 100 x 5,000 panel
    STOCKPIPE_BENCH_TICKERS=500 STOCKPIPE_BENCH_DAYS=5000 pytest benchmarks/

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from pandas_reference import FEATURE_NAMES, pandas_features

from pipeline.features.engine import add_features
from pipeline.features.spec import FeatureDef, FeaturesConfig, build_feature_defs

if TYPE_CHECKING:
    from conftest import BenchConfig, BenchResults

GROUP = "features"
# Relative tolerance asked of the comparison. The absolute floor only matters for rolling means
# of log returns that land within ~1e-8 of zero: there both implementations are within ~5e-17
# of the exact (math.fsum) window mean, but their running sums round differently, so the
# *relative* gap can exceed 1e-9. 1e-14 is ~1e-12 of a typical daily log return (~1e-2).
RTOL = 1e-9
ATOL = 1e-14


def run_engine(frame: pl.DataFrame, defs: list[FeatureDef]) -> pl.DataFrame:
    """The engine as production calls it: lazy frame in, default ``collect()`` out."""
    return add_features(frame.lazy(), defs).collect()


def run_engine_in_memory(frame: pl.DataFrame, defs: list[FeatureDef]) -> pl.DataFrame:
    """Diagnostic variant: the same query on Polars' in-memory engine instead of the default."""
    return add_features(frame.lazy(), defs).collect(engine="in-memory")


ENGINES: dict[str, Callable[[pl.DataFrame, list[FeatureDef]], pl.DataFrame]] = {
    "polars": run_engine,
    "polars_in_memory": run_engine_in_memory,
}


def _record(benchmark: Any, results: BenchResults, engine: str, rows: int) -> None:
    meta = getattr(benchmark, "stats", None)  # None under --benchmark-disable
    if meta is None:
        return
    results.record(engine, rows, float(meta.stats.mean), benchmark.extra_info)


# --- timed benchmarks -------------------------------------------------------------------------


@pytest.mark.benchmark(group=GROUP)
def test_bench_polars_engine(
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
    _record(benchmark, bench_results, "polars", panel.height)


@pytest.mark.benchmark(group=GROUP)
def test_bench_pandas_reference(
    benchmark: Any,
    panel_pandas: pd.DataFrame,
    bench_config: BenchConfig,
    bench_results: BenchResults,
) -> None:
    out = benchmark.pedantic(
        pandas_features, args=(panel_pandas,), rounds=bench_config.rounds, warmup_rounds=1
    )
    assert out.shape == (len(panel_pandas), panel_pandas.shape[1] + len(FEATURE_NAMES))
    _record(benchmark, bench_results, "pandas", len(panel_pandas))


@pytest.mark.benchmark(group=GROUP)
def test_bench_polars_engine_in_memory(
    benchmark: Any,
    panel: pl.DataFrame,
    feature_defs: list[FeatureDef],
    bench_config: BenchConfig,
    bench_results: BenchResults,
) -> None:
    """Not the production path: shows what the default (streaming) engine costs on this query."""
    out = benchmark.pedantic(
        run_engine_in_memory,
        args=(panel, feature_defs),
        rounds=bench_config.rounds,
        warmup_rounds=1,
    )
    assert out.height == panel.height
    benchmark.extra_info["note"] = "diagnostic: collect(engine='in-memory')"
    _record(benchmark, bench_results, "polars_in_memory", panel.height)


# --- correctness ------------------------------------------------------------------------------


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
        }
    )
    assert panel.height == bench_config.rows
    assert panel.null_count().sum_horizontal().item() == 0
    checks = panel.select(
        (pl.col("high") >= pl.max_horizontal("open", "close")).all().alias("high"),
        (pl.col("low") <= pl.min_horizontal("open", "close")).all().alias("low"),
        (pl.col("low") > 0).all().alias("positive_prices"),
        (pl.col("volume") > 0).all().alias("positive_volume"),
        (pl.col("date").dt.weekday() <= 5).all().alias("business_days"),
        (pl.struct("ticker", "date").n_unique() == pl.len()).alias("unique_keys"),
    )
    assert all(checks.row(0)), dict(zip(checks.columns, checks.row(0), strict=True))


def test_polars_engine_matches_pandas_reference(
    panel: pl.DataFrame, panel_pandas: pd.DataFrame, feature_defs: list[FeatureDef]
) -> None:
    assert tuple(d.name for d in feature_defs) == FEATURE_NAMES
    got = run_engine(panel, feature_defs)
    ref = pandas_features(panel_pandas)
    assert got.height == len(ref)
    np.testing.assert_array_equal(got["ticker"].to_numpy(), ref["ticker"].to_numpy())
    np.testing.assert_array_equal(
        got["date"].to_numpy(), ref["date"].to_numpy().astype("datetime64[D]")
    )
    for name in FEATURE_NAMES:
        ours = got[name].to_numpy()  # Float64 nulls -> NaN
        theirs = ref[name].to_numpy(dtype=np.float64)
        np.testing.assert_array_equal(
            np.isnan(ours), np.isnan(theirs), err_msg=f"{name}: NaN positions differ"
        )
        assert np.isfinite(ours[~np.isnan(ours)]).all(), f"{name}: non-finite values"
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL, err_msg=name)


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
    from conftest import make_panel

    defs = build_feature_defs(FeaturesConfig())
    panel = make_panel(tickers, days, seed=seed)
    frame: pl.DataFrame | pd.DataFrame
    build: Callable[[Any], Any]
    if engine in ENGINES:
        run = ENGINES[engine]
        frame, build = panel, lambda f: run(f, defs)
        input_bytes = panel.estimated_size()
    elif engine == "pandas":
        frame, build = panel.to_pandas(), pandas_features
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


@pytest.mark.parametrize("engine", ["polars", "pandas", "polars_in_memory"])
def test_peak_memory(engine: str, bench_config: BenchConfig, bench_results: BenchResults) -> None:
    info = _measure_in_subprocess(engine, bench_config)
    assert info["rows"] == bench_config.rows
    assert info["peak_rss_mb"] >= info["baseline_rss_mb"] > 0
    bench_results.attach_memory(engine, info)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Peak RSS of one feature build (JSON).")
    parser.add_argument("--memory", choices=[*ENGINES, "pandas"], required=True)
    parser.add_argument("--tickers", type=int, default=100)
    parser.add_argument("--days", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    from conftest import DEFAULT_SEED

    seed = DEFAULT_SEED if args.seed is None else args.seed
    print(json.dumps(measure_peak_memory(args.memory, args.tickers, args.days, seed)))


if __name__ == "__main__":
    main()
