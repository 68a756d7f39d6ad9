"""PriceSchema, the pandera model of the price contract: each rule on its own, all at once.

The oracle of every rule is a hand-built frame whose defects sit at known rows: the expected
positions are written out here, not computed by any rule. Both ways of running the schema
must find exactly them: ``broken_rules`` (the one Polars pass over ``pipeline.data.rules``)
and ``pandera_broken_rules`` (pandera alone, running ``PriceSchema``, built from those rules).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pandera.polars as pa
import polars as pl
import pytest

from pipeline.data.contract import PriceSchema, broken_rules, pandera_broken_rules
from pipeline.data.contract import report as contract_report
from pipeline.data.rules import COLUMNS, RULES, find_broken
from pipeline.data.validation import check_contract

Frame = Callable[[pl.DataFrame], pl.DataFrame]
NAN, INF = math.nan, math.inf
MISSING = "values must not be missing"


def bars() -> pl.DataFrame:
    """Two tickers x four business days of valid bars: rows 0-3 are AAA, rows 4-7 BBB."""
    days = [dt.date(2024, 1, d) for d in (2, 3, 4, 5)]
    return pl.DataFrame(
        {
            "ticker": ["AAA"] * 4 + ["BBB"] * 4,
            "date": days * 2,
            "open": [10.0] * 8,
            "high": [12.0] * 8,
            "low": [8.0] * 8,
            "close": [11.0] * 8,
            "volume": [100.0] * 8,
            "bench_close": [400.0] * 8,
        }
    )


def put(column: str, values: dict[int, Any]) -> Frame:
    """Set ``column`` at the given rows (the defects), keeping its type."""

    def change(frame: pl.DataFrame) -> pl.DataFrame:
        cells = frame[column].to_list()
        for row, value in values.items():
            cells[row] = value
        return frame.with_columns(pl.Series(column, cells, dtype=frame.schema[column]))

    return change


def found(rules: list[contract_report.Broken]) -> dict[tuple[str, str], list[int]]:
    return {(b.column, b.rule): b.rows.to_list() for b in rules}


CASES: dict[str, tuple[Frame, dict[tuple[str, str], list[int]]]] = {
    "non-finite price": (
        put("high", {2: NAN, 6: INF}),
        {("high", "prices must be finite and > 0"): [2, 6]},
    ),
    "non-positive price": (
        put("low", {1: 0.0, 5: -3.0}),  # low, so that low <= min(open, close) still holds
        {("low", "prices must be finite and > 0"): [1, 5]},
    ),
    "missing price": (
        put("close", {4: None}),
        {("close", "prices must be finite and > 0"): [4]},
    ),
    "price out of range": (
        put("high", {1: 1e16}),
        {("high", "prices must be between 1e-12 and 1e+15"): [1]},
    ),
    "bench_close not finite (null allowed)": (
        put("bench_close", {0: NAN, 1: None, 5: -1.0}),
        {("bench_close", "prices must be finite and > 0"): [0, 5]},
    ),
    "negative or NaN volume": (
        put("volume", {2: -1.0, 5: NAN}),
        {("volume", "volume must be finite and >= 0"): [2, 5]},
    ),
    "volume too large": (
        put("volume", {7: 1e19}),
        {("volume", "volume must be <= 1e+18"): [7]},
    ),
    "empty ticker": (
        put("ticker", {3: "  ", 7: None}),
        {("ticker", "ticker must not be empty"): [3, 7]},
    ),
    "date out of range": (
        put("date", {0: dt.date(1799, 12, 31), 7: dt.date(2200, 1, 1)}),
        {("date", "dates must be between 1800-01-01 and 2199-12-31"): [0, 7]},
    ),
    "missing date": (put("date", {2: None}), {("date", MISSING): [2]}),
    "high below open or close": (
        put("high", {1: 10.5}),
        {("high", "high must be >= max(open, close)"): [1]},
    ),
    "low above open or close": (
        put("low", {6: 10.5}),
        {("low", "low must be <= min(open, close)"): [6]},
    ),
    "duplicate (ticker, date)": (  # the second copy is also not later than the first
        put("date", {2: dt.date(2024, 1, 3)}),
        {
            ("date", "duplicate (ticker, date)"): [1, 2],
            ("date", "dates must be strictly increasing per ticker"): [2],
        },
    ),
    "dates going back": (
        put("date", {4: dt.date(2024, 1, 3), 5: dt.date(2024, 1, 2)}),
        {("date", "dates must be strictly increasing per ticker"): [5]},
    ),
    "wrong type": (
        lambda f: f.with_columns(pl.col("volume").cast(pl.Int64)),
        {("volume", "must be of type Float64, got Int64"): []},
    ),
    "missing column": (  # volume, open, high and low are optional (close-only data)
        lambda f: f.drop("close"),
        {("close", "required column is missing"): []},
    ),
}


def test_the_schema_is_importable_and_valid_bars_pass() -> None:
    frame = bars()
    assert PriceSchema.validate(frame, lazy=True).equals(frame)
    assert broken_rules(frame) == [] and pandera_broken_rules(frame) == []
    # bench_close is optional, and other columns (the pipeline's row number) are allowed.
    assert broken_rules(frame.drop("bench_close").with_row_index("row")) == []


@pytest.mark.parametrize("case", list(CASES))
def test_each_rule_finds_exactly_the_broken_rows(case: str) -> None:
    damage, expected = CASES[case]
    frame = damage(bars())
    assert found(pandera_broken_rules(frame)) == expected
    assert found(broken_rules(frame)) == expected
    with pytest.raises(pa.errors.SchemaErrors):
        PriceSchema.validate(frame, lazy=True)


def test_lazy_validation_reports_every_broken_rule_in_one_error() -> None:
    damages = [
        put("low", {1: -1.0}),
        put("volume", {2: 1e19}),
        put("ticker", {3: ""}),
        put("low", {6: 10.5}),
        put("date", {5: dt.date(2024, 1, 2)}),
    ]
    frame = bars()
    for damage in damages:
        frame = damage(frame)
    with pytest.raises(pa.errors.SchemaErrors) as err:
        PriceSchema.validate(frame, lazy=True)
    checks = set(err.value.failure_cases["check"].to_list())
    assert {
        "prices must be finite and > 0",
        "volume must be <= 1e+18",
        "ticker must not be empty",
        "low must be <= min(open, close)",
        "duplicate (ticker, date)",
        "dates must be strictly increasing per ticker",
    } <= checks
    # The pipeline's report lists them in the contract's order, each with its rows.
    assert [(b.column, b.rule, b.rows.to_list()) for b in broken_rules(frame)] == [
        ("low", "prices must be finite and > 0", [1]),
        ("volume", "volume must be <= 1e+18", [2]),
        ("ticker", "ticker must not be empty", [3]),
        ("low", "low must be <= min(open, close)", [6]),
        ("date", "duplicate (ticker, date)", [4, 5]),
        ("date", "dates must be strictly increasing per ticker", [5]),
    ]


def test_the_contract_never_runs_pandera(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clean or broken, PriceSchema's own rules are one Polars pass; pandera is not run."""

    def pandera_called(*args: Any) -> None:
        raise AssertionError("pandera ran for the contract's own rules")

    monkeypatch.setattr(contract_report, "pandera_broken_rules", pandera_called)
    assert broken_rules(bars()) == [] and find_broken(bars()) == []
    broken = put("high", {1: 10.5})(bars())
    assert found(broken_rules(broken)) == {("high", "high must be >= max(open, close)"): [1]}


def test_price_schema_is_built_from_the_rules() -> None:
    """Every column and rule of ``pipeline.data.rules`` is in PriceSchema, and nothing else:
    each rule a check on its column, named and worded as the rule; null left to the rules."""
    schema = PriceSchema.to_schema()
    assert not schema.checks and not schema.unique  # no dataframe-level rule
    declared = {
        name: (
            col.required,
            col.nullable,
            sorted((c.name, c.error, c.ignore_na) for c in col.checks),
        )
        for name, col in schema.columns.items()
    }
    expected = {
        c.name: (
            c.required,
            True,
            sorted((r.name, r.message, False) for r in RULES if r.column == c.name),
        )
        for c in COLUMNS
    }
    assert declared == expected
    others = [pl.Float32(), pl.Int64(), pl.String(), pl.Date(), pl.Datetime(), pl.Float64()]
    for c in COLUMNS:
        for dtype in others:  # the pass accepts exactly the types pandera accepts
            assert schema.columns[c.name].dtype.check(dtype) is (dtype == c.dtype), (c, dtype)


def test_a_frame_of_other_types_goes_to_pandera() -> None:
    frame = bars().with_columns(pl.col("volume").cast(pl.Int64))
    assert [b.rule for b in pandera_broken_rules(frame)] == ["must be of type Float64, got Int64"]
    assert [b.rule for b in broken_rules(frame)] == ["must be of type Float64, got Int64"]


def test_pandera_settings_cannot_switch_the_contract_off() -> None:
    frame = put("high", {1: 10.5})(bars())
    with pa.config.config_context(validation_enabled=False, validation_depth="SCHEMA_ONLY"):
        assert PriceSchema.validate(frame, lazy=True) is frame  # pandera's own switch
        assert found(broken_rules(frame)) == {("high", "high must be >= max(open, close)"): [1]}


def test_passing_price_schema_explicitly_does_not_run_pandera(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller may pass PriceSchema by name; its rules still cost one Polars pass."""
    import pipeline.data.contract.report as report

    def pandera_called(*args: Any) -> None:
        raise AssertionError("pandera ran for the contract's own rules")

    monkeypatch.setattr(report, "pandera_broken_rules", pandera_called)
    assert check_contract(bars(), "request", schema=PriceSchema).errors == []
    broken = check_contract(put("high", {1: 10.5})(bars()), "request", schema=PriceSchema)
    assert [v.rule for v in broken.errors] == ["high must be >= max(open, close)"]
