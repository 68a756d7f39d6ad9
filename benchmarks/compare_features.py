"""Interleaved timing of the engine against the references, for a noisy shared machine.

    python benchmarks/compare_features.py --tickers 500 --days 5000 --rounds 7
    python benchmarks/compare_features.py --baseline /tmp/old/engine.py   # before vs after

Each round runs every implementation once, in turn, so that load from other jobs hits them
alike; the medians over rounds and their ratios are printed as cells/s (output cells = rows x
features). ``--baseline`` loads another version of ``pipeline/features/engine.py`` from a file
(e.g. a copy of the engine before a change), checks that both give the same frame bit for
bit, and times it in the same rounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import DEFAULT_SEED, make_panel, shipped_feature_set
from pandas_reference import pandas_features
from polars_reference import floor_features, polars_features

from pipeline.features.engine import add_features, collect


def _load_engine(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location("baseline_engine", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def implementations(tickers: int, days: int, baseline: Path | None) -> dict[str, Callable[[], Any]]:
    """Zero-argument callables, one per implementation, on one shared panel."""
    fs = shipped_feature_set()
    panel = make_panel(tickers, days, seed=DEFAULT_SEED)
    frame = panel.to_pandas()
    runs: dict[str, Callable[[], Any]] = {
        "engine": lambda: collect(add_features(panel.lazy(), fs.defs)),
        "polars": lambda: polars_features(panel, fs.config, fs.columns),
        "floor": lambda: floor_features(panel, len(fs.columns)),
        "pandas": lambda: pandas_features(frame, fs.config, fs.columns),
    }
    if baseline is not None:
        old = _load_engine(baseline)
        runs["baseline"] = lambda: old.collect(old.add_features(panel.lazy(), fs.defs))
    return runs


def time_interleaved(runs: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call, one call of each implementation per round, after one warm-up each."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def report(times: dict[str, list[float]], cells: int) -> None:
    """Median ms, cells/s and ratios (per output cell) against each reference."""
    med = {name: statistics.median(ts) for name, ts in times.items()}
    refs = [r for r in ("polars", "floor", "pandas", "baseline") if r in med]
    print(
        f"{'impl':>9} {'median ms':>10} {'min ms':>8} {'M cells/s':>10} "
        + " ".join(f"{'vs ' + r:>12}" for r in refs)
    )
    for name, m in med.items():
        ratios = " ".join(f"{med[r] / m:>11.2f}x" for r in refs)
        print(
            f"{name:>9} {m * 1e3:>10.0f} {min(times[name]) * 1e3:>8.0f} "
            f"{cells / m / 1e6:>10.1f} {ratios}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--days", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--baseline", type=Path, default=None)
    parser.add_argument("--skip", nargs="*", default=[], help="implementations not to run")
    args = parser.parse_args(argv)
    runs = implementations(args.tickers, args.days, args.baseline)
    runs = {k: v for k, v in runs.items() if k not in args.skip}
    if "baseline" in runs and "engine" in runs:  # a before/after timing is of the same bits
        same = runs["engine"]().equals(runs["baseline"]())
        print(f"engine output bit-identical to the baseline's: {same}")
    times = time_interleaved(runs, args.rounds)
    report(times, args.tickers * args.days * len(shipped_feature_set().columns))


if __name__ == "__main__":
    main()
