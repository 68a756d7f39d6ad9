"""`stockpipe validate` predicts what real data will do: undefined, empty and constant features,
stale tickers and days the benchmark did not trade, each located.

Oracles: Python sets over the fixture's and SPY's dates, and the fixture's own construction
(the suspension's rows, the delisting date).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
from click.testing import CliRunner
from realdata import DELISTS, LAST, business_day_panel, with_stale_stretch
from support import SAMPLE

from pipeline.cli import main
from pipeline.data.inputs import Inputs
from pipeline.domain import PriceBatch
from pipeline.training.dataset import TrainingSet
from pipeline.training.quality import quality_lines

TICKERS = ("ALPHA", "LATE", "GONE")


def test_validate_names_stale_tickers_holidays_and_undefined_features(
    conf_dir: Path, tmp_path: Path
) -> None:
    panel = with_stale_stretch(business_day_panel(TICKERS), "ALPHA", 900)
    path = tmp_path / "panel.csv"
    panel.write_csv(path)
    result = CliRunner().invoke(main, ["validate", "--config", str(conf_dir), "--data", str(path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"stale tickers (the panel ends {LAST}" in out and f"GONE (last bar {DELISTS})" in out
    spy = set(pl.read_csv(SAMPLE / "SPY.csv", try_parse_dates=True).get_column("date"))
    for ticker in TICKERS:
        days = panel.filter(pl.col("ticker") == ticker).get_column("date").to_list()
        extra = sorted(d for d in days if d not in spy)
        assert f"{ticker} ({len(extra)} days, first {extra[0]})" in out
    # The suspension: volume 0 for 25 days makes the volume z-score undefined there.
    stale_days = panel.filter(pl.col("ticker") == "ALPHA").sort("date").get_column("date")[900:925]
    line = next(x for x in out.splitlines() if x.startswith("features undefined"))
    assert "rolling_zscore_volume_20" in line
    first = line.split("rolling_zscore_volume_20 (")[1].split("first ALPHA ")[1].split(")")[0]
    assert dt.date.fromisoformat(first) in set(stale_days)


def test_empty_and_constant_features_are_named() -> None:
    n = 50
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=n), np.full(n, np.nan), np.full(n, 2.5)])
    dates = pl.date_range(dt.date(2024, 1, 1), dt.date(2024, 2, 19), eager=True)
    data = TrainingSet(
        X=X,
        y=rng.normal(size=n),
        dates=dates,
        tickers=pl.Series(["A"] * n),
        columns=("ok", "empty", "flat"),
        raw=pl.DataFrame(),
        last_return=np.zeros(n),
    )
    frame = pl.DataFrame({"ticker": ["A"] * n, "date": dates, "close": 1.0})
    inputs = Inputs(PriceBatch(frame, "t", "x"), None, None)
    lines = quality_lines(data, inputs)
    assert lines == [
        "features entirely null on the trainable rows: empty",
        "features constant on the trainable rows: flat",
    ]
    data.X[3, 0] = np.nan
    assert quality_lines(data, inputs)[-1] == (
        f"features undefined on some trainable rows: ok (1 rows, first A {dates[3]})"
    )
