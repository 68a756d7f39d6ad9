"""The (ticker, date) order on one integer key, against Polars' own two-key sort."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from pipeline.ordering import by_ticker_date, ordered, strictly_ordered, unique_keys


def shuffled_panel(seed: int, n: int = 2_000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    # Tickers whose byte order differs from their length order, and dates on both sides of
    # 1970 (negative day counts) out to the contract's bounds.
    tickers = np.array(["B", "AA", "A", "BRK.B", "a", "Z9", "ÄX", ""])
    days = rng.integers(-62_000, 84_000, size=n)
    frame = pl.DataFrame(
        {
            "ticker": tickers[rng.integers(0, len(tickers), size=n)],
            "date": pl.Series(days, dtype=pl.Int32).cast(pl.Date),
            "close": rng.standard_normal(n),
        }
    )
    return frame.unique(["ticker", "date"], keep="first", maintain_order=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_order_is_polars_two_key_sort(seed: int) -> None:
    frame = shuffled_panel(seed)
    assert by_ticker_date(frame).equals(frame.sort("ticker", "date"))
    assert by_ticker_date(frame)["ticker"].flags["SORTED_ASC"]


def test_ties_keep_their_input_order() -> None:
    day = dt.date(2024, 1, 2)
    frame = pl.DataFrame({"ticker": ["B", "A", "A"], "date": [day] * 3, "close": [1.0, 2.0, 3.0]})
    assert by_ticker_date(frame)["close"].to_list() == [2.0, 3.0, 1.0]


def test_strictly_ordered_refuses_disorder_and_repeats() -> None:
    frame = shuffled_panel(3).sort("ticker", "date")
    assert strictly_ordered(frame) and strictly_ordered(frame.head(1))
    assert not strictly_ordered(frame.reverse())
    assert not strictly_ordered(pl.concat([frame.head(3), frame.slice(2, 1)]))  # a key twice
    with_null = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(None).otherwise(pl.col("date")).alias("date")
    )
    assert not strictly_ordered(with_null)


def test_ordered_sorts_only_when_needed() -> None:
    frame = shuffled_panel(4)
    done = ordered(frame)
    assert done.equals(frame.sort("ticker", "date"))
    assert ordered(done) is done


def test_unique_keys_finds_a_key_twice_in_or_out_of_order() -> None:
    frame = shuffled_panel(5)
    assert unique_keys(frame) and unique_keys(frame.sort("ticker", "date"))
    twice = pl.concat([frame, frame.slice(7, 1)])
    assert not unique_keys(twice) and not unique_keys(twice.sort("ticker", "date"))
