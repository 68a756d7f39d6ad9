"""What `validate` can tell about real data before a job trains on it.

Everything here reads the plan `train` would run (its training set: the rows past the feature
warm-up with a known target) and the validated inputs, and returns human lines:

- features that are entirely null or constant over the trainable rows (they will be imputed
  as a constant and carry nothing), and features undefined on some trainable rows (a flat
  price makes a zero variance or range; the engine makes those values null, never infinite),
  each with the first ticker and date;
- tickers whose last bar is older than the panel's last date (stale: `score` will not predict
  them as of today, and the portfolio never holds them after that bar);
- tickers that trade on days the benchmark does not (their market features use the
  benchmark's last close before such a day).
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl

from pipeline.data.inputs import Inputs
from pipeline.training.dataset import TrainingSet

SHOWN = 8  # items listed per line before "... and N more"


def quality_lines(data: TrainingSet, inputs: Inputs) -> list[str]:
    """Every finding as one line; nothing when the data is clean."""
    return [*_feature_lines(data), *_stale_lines(inputs), *_calendar_lines(inputs)]


def _listed(items: list[str]) -> str:
    more = f" ... and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def _feature_lines(data: TrainingSet) -> list[str]:
    missing = np.isnan(data.X)
    all_missing = missing.all(axis=0)
    with warnings.catch_warnings():  # an all-null column has no min: it is reported as such
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(data.X, axis=0), np.nanmax(data.X, axis=0)
    cols = data.columns
    empty = [n for n, e in zip(cols, all_missing, strict=True) if e]
    constant = [n for n, a, b, e in zip(cols, lo, hi, all_missing, strict=True) if a == b and not e]
    partial = [
        _first_missing(data, j)
        for j in range(len(cols))
        if missing[:, j].any() and not all_missing[j]
    ]
    lines = []
    if empty:
        lines.append(f"features entirely null on the trainable rows: {_listed(empty)}")
    if constant:
        lines.append(f"features constant on the trainable rows: {_listed(constant)}")
    if partial:
        lines.append(f"features undefined on some trainable rows: {_listed(partial)}")
    return lines


def _first_missing(data: TrainingSet, j: int) -> str:
    rows = np.flatnonzero(np.isnan(data.X[:, j]))
    first = int(rows[0])
    where = f"{data.tickers[first]} {data.dates[first]}"
    return f"{data.columns[j]} ({rows.size} rows, first {where})"


def _stale_lines(inputs: Inputs) -> list[str]:
    stale, newest = inputs.stale()
    if not stale:
        return []
    named = [f"{t} (last bar {d})" for t, d in stale.items()]
    return [f"stale tickers (the panel ends {newest}; not scored as of then): {_listed(named)}"]


def _bench_dates(inputs: Inputs) -> pl.Series | None:
    if inputs.benchmark is None:
        return None
    if inputs.benchmark_batch is not None:
        return inputs.benchmark_batch.frame.get_column("date")
    own = inputs.batch.frame.filter(pl.col("ticker") == inputs.benchmark)
    return own.get_column("date") if own.height else None


def _calendar_lines(inputs: Inputs) -> list[str]:
    bench = _bench_dates(inputs)
    if bench is None:
        return []
    first = bench.min()
    panel = inputs.batch.frame.filter(pl.col("ticker") != inputs.benchmark)
    extra = (
        panel.filter((pl.col("date") >= first) & ~pl.col("date").is_in(bench.implode()))
        .group_by("ticker")
        .agg(pl.len().alias("n"), pl.col("date").min().alias("first"))
        .sort("ticker")
    )
    found = [
        f"{r['ticker']} ({r['n']} days, first {r['first']})" for r in extra.iter_rows(named=True)
    ]
    if not found:
        return []
    return [
        f"days the benchmark {inputs.benchmark} did not trade (its last close is used): "
        + _listed(found)
    ]
