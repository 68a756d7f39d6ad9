"""The price contract's error rules: the shipped pass and pandera against hand-written checks.

    pytest benchmarks/test_bench_contract.py -s              # 100 tickers x 5,000 days = 500k rows
    STOCKPIPE_BENCH_TICKERS=500 pytest benchmarks/test_bench_contract.py -s   # 2.5M rows

Three ways to find the broken rules of one frame, timed in the same process, interleaved
(one call of each per round, ``STOCKPIPE_BENCH_ROUNDS`` rounds after a warm-up), medians:

* ``hand``: the contract as it was before pandera (below, kept only as the timing reference and
  an oracle): every rule one Polars expression, all evaluated in one ``select``.
* ``pandera``: ``pandera_broken_rules``, one lazy ``PriceSchema.validate`` (pandera runs each
  check as a few small Polars queries) and its ``failure_cases`` turned into rules and rows:
  what a user's subclass of ``PriceSchema`` pays on top of ``shipped``.
* ``shipped``: ``broken_rules`` as ``check_contract`` calls it: one Polars query over the
  rules of ``pipeline.data.rules`` (each rule's ``any``), and, only when one is broken, a
  second that finds their rows; pandera is not run.

On the seeded panel (``conftest.make_panel``), clean and with ~0.3% of rows broken, and on one
request-sized frame (1 ticker x 322 bars, what ``POST /predict`` validates). The warnings
(policy thresholds) are the same code before and after, so they are not timed here. Ratios
(``pandera / hand``, ``shipped / hand``) are printed (``-s``) and stored in ``extra_info``;
nothing is asserted about time. ``test_pandera_finds_what_the_hand_written_rules_find`` checks
that both find the same rows for every rule on the broken panel.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
from conftest import BenchConfig, make_panel

from pipeline.data.contract import broken_rules, pandera_broken_rules
from pipeline.data.rules import FIRST_DATE, LAST_DATE, MAX_PRICE, MAX_VOLUME, MIN_PRICE

GROUP = "contract"
Rules = dict[tuple[str, str], list[int]]
PRICES = ("open", "high", "low", "close", "bench_close")
OC = ("open", "close")


def _price_rules(column: str) -> list[tuple[str, str, pl.Expr]]:
    ok = pl.col(column).is_finite() & (pl.col(column) > 0)
    out_of_range = ok & ~pl.col(column).is_between(MIN_PRICE, MAX_PRICE)
    if column == "bench_close":  # optional: null means "no quote that day"
        ok, out_of_range = ok | pl.col(column).is_null(), out_of_range.fill_null(False)
    return [
        (column, "prices must be finite and > 0", ~ok),
        (column, f"prices must be between {MIN_PRICE:g} and {MAX_PRICE:g}", out_of_range),
    ]


def _hand_rules() -> list[tuple[str, str, pl.Expr]]:
    """The error rules as they were written before pandera (column, rule, broken)."""
    volume, date, ticker = pl.col("volume"), pl.col("date"), pl.col("ticker")
    return [
        *[rule for c in PRICES for rule in _price_rules(c)],
        ("volume", "volume must be finite and >= 0", ~(volume.is_finite() & (volume >= 0))),
        ("volume", f"volume must be <= {MAX_VOLUME:g}", volume.is_finite() & (volume > MAX_VOLUME)),
        ("ticker", "ticker must not be empty", ticker.is_null() | (ticker.str.strip_chars() == "")),
        (
            "date",
            f"dates must be between {FIRST_DATE} and {LAST_DATE}",
            ~date.is_between(FIRST_DATE, LAST_DATE),
        ),
        (
            "high",
            "high must be >= max(open, close)",
            pl.col("high") < pl.max_horizontal("open", "close"),
        ),
        (
            "low",
            "low must be <= min(open, close)",
            pl.col("low") > pl.min_horizontal("open", "close"),
        ),
        ("date", "duplicate (ticker, date)", pl.struct("ticker", "date").is_duplicated()),
        (
            "date",
            "dates must be strictly increasing per ticker",
            (date <= date.shift(1)).over("ticker").fill_null(False),
        ),
    ]


def hand_written(frame: pl.DataFrame) -> Rules:
    """Broken rules -> row positions, by the pre-pandera single-pass evaluation."""
    rules = _hand_rules()
    flags = frame.select([e.fill_null(False).alias(f"r{i}") for i, (_, _, e) in enumerate(rules)])
    found = {(c, r): flags[f"r{i}"].arg_true().to_list() for i, (c, r, _) in enumerate(rules)}
    return {key: rows for key, rows in found.items() if rows}


def via(run: Callable[[pl.DataFrame], list[Any]]) -> Callable[[pl.DataFrame], Rules]:
    return lambda frame: {(b.column, b.rule): b.rows.to_list() for b in run(frame)}


WAYS = {"hand": hand_written, "pandera": via(pandera_broken_rules), "shipped": via(broken_rules)}


def broken_panel(panel: pl.DataFrame) -> pl.DataFrame:
    """~0.3% of rows broken: high under close, negative volume, a date repeated per ticker."""
    i = pl.int_range(pl.len())
    return panel.with_columns(
        pl.when(i % 997 == 5).then(pl.col("close") * 0.9).otherwise("high").alias("high"),
        pl.when(i % 1009 == 7).then(-1.0).otherwise("volume").alias("volume"),
        pl.when(i % 1013 == 11).then(pl.col("date").shift(1)).otherwise("date").alias("date"),
    )


def interleaved(frame: pl.DataFrame, rounds: int) -> dict[str, float]:
    """Median seconds of each way, one call of each per round after one warm-up round."""
    times: dict[str, list[float]] = {name: [] for name in WAYS}
    for n in range(rounds + 1):
        for name, run in WAYS.items():
            start = time.perf_counter()
            run(frame)
            if n:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(seconds) for name, seconds in times.items()}


def report(benchmark: Any, what: str, rows: int, medians: dict[str, float]) -> None:
    numbers = {f"{name}_ms": round(s * 1e3, 2) for name, s in medians.items()}
    numbers |= {
        f"{n}_vs_hand": round(medians[n] / medians["hand"], 2) for n in ("pandera", "shipped")
    }
    benchmark.extra_info.update(rows=rows, **numbers)
    text = ", ".join(f"{k} {v:,}" for k, v in numbers.items())
    print(f"\n[contract] {what}, {rows:,} rows: {text}")


@pytest.fixture(scope="module")
def contract_panel(panel: pl.DataFrame) -> pl.DataFrame:
    return panel.with_row_index("row")


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("kind", ["clean", "broken"])
def test_bench_contract_panel(
    benchmark: Any, bench_config: BenchConfig, contract_panel: pl.DataFrame, kind: str
) -> None:
    frame = contract_panel if kind == "clean" else broken_panel(contract_panel)
    medians: dict[str, float] = {}
    benchmark.pedantic(lambda: medians.update(interleaved(frame, bench_config.rounds)), rounds=1)
    report(benchmark, f"{kind} panel", frame.height, medians)


@pytest.mark.benchmark(group=GROUP)
def test_bench_contract_request_sized(benchmark: Any) -> None:
    frame = make_panel(1, 322).with_row_index("row")
    medians: dict[str, float] = {}
    benchmark.pedantic(lambda: medians.update(interleaved(frame, 50)), rounds=1)
    report(benchmark, "request-sized frame (1 ticker)", frame.height, medians)


def test_pandera_finds_what_the_hand_written_rules_find(contract_panel: pl.DataFrame) -> None:
    frame = broken_panel(contract_panel)
    expected = hand_written(frame)
    assert {rule for _, rule in expected} >= {
        "high must be >= max(open, close)",
        "volume must be finite and >= 0",
        "duplicate (ticker, date)",
        "dates must be strictly increasing per ticker",
    }
    assert via(pandera_broken_rules)(frame) == expected
    assert via(broken_rules)(frame) == expected
    assert hand_written(contract_panel) == {} and broken_rules(contract_panel) == []
