"""``Inputs.window``: what `score` loads into its scratch warehouse reads back exactly as the
whole file would, for the last ``rows`` rows of every ticker (issue 15: `score` in seconds)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from pipeline.bootstrap import scratch_warehouse
from pipeline.data.inputs import Inputs, store_inputs
from pipeline.domain import PriceBatch


def bars(ticker: str, start: dt.date, days: int, base: float) -> pl.DataFrame:
    """``days`` consecutive daily bars of ``ticker`` from ``start``, all prices distinct."""
    dates = pl.date_range(start, start + dt.timedelta(days=days - 1), eager=True)
    close = pl.Series([base + i for i in range(days)], dtype=pl.Float64)
    return pl.DataFrame(
        {
            "ticker": [ticker] * days,
            "date": dates,
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": close * 10,
        }
    )


def latest(inputs: Inputs, rows: int) -> pl.DataFrame:
    """What `score` reads: the last ``rows`` rows per ticker from a fresh scratch warehouse."""
    workspace = scratch_warehouse()
    store_inputs(workspace, inputs)
    return inputs.history(workspace, rows=rows).collect()


START = dt.date(2024, 1, 1)
# B's data ends 100 days before A's: its window starts well before A's.
PANEL = pl.concat(
    [bars("A", START, 400, 100.0), bars("B", START, 300, 500.0), bars("SPY", START, 400, 900.0)]
)


@pytest.mark.parametrize("rows", [1, 20, 299, 300, 1000])
def test_window_reads_back_like_the_whole_file_with_the_benchmark_in_the_panel(
    rows: int,
) -> None:
    inputs = Inputs(PriceBatch(PANEL, "panel.csv", "x"), None, "SPY")
    cut = inputs.window(rows)
    assert cut.batch.frame.height <= PANEL.height
    assert latest(cut, rows).equals(latest(inputs, rows))
    assert latest(cut, rows)["bench_close"].null_count() == 0


@pytest.mark.parametrize("rows", [1, 50, 350])
def test_window_reads_back_like_the_whole_file_with_a_separate_benchmark(rows: int) -> None:
    panel = PANEL.filter(pl.col("ticker") != "SPY")
    spy = PriceBatch(PANEL.filter(pl.col("ticker") == "SPY"), "SPY.csv", "y")
    inputs = Inputs(PriceBatch(panel, "panel.csv", "x"), spy, "SPY")
    cut = inputs.window(rows)
    assert cut.benchmark_batch is not None and cut.benchmark_batch.frame.height <= 400
    assert latest(cut, rows).equals(latest(inputs, rows))


def test_window_keeps_only_the_last_rows_of_each_ticker() -> None:
    inputs = Inputs(PriceBatch(PANEL.sample(fraction=1.0, seed=3), "panel.csv", "x"), None, None)
    cut = inputs.window(5).batch.frame
    assert cut.group_by("ticker").len().sort("ticker")["len"].to_list() == [5, 5, 5]
    last_a = cut.filter(pl.col("ticker") == "A")["date"].to_list()
    assert last_a == [START + dt.timedelta(days=d) for d in range(395, 400)]
