"""The pandera schema as users meet it: extended in a notebook, and in the contract's messages."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pandera.polars as pa
import polars as pl
import pytest

from pipeline.data.contract import PriceSchema
from pipeline.data.validation import check_contract
from pipeline.errors import DataError


def bars(n: int = 4) -> pl.DataFrame:
    """``n`` valid daily bars of one ticker, as a user might build them in a notebook."""
    return pl.DataFrame(
        {
            "ticker": ["ACME"] * n,
            "date": [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)],
            "open": [10.0] * n,
            "high": [11.0] * n,
            "low": [9.0] * n,
            "close": [10.5] * n,
            "volume": [100.0] * n,
        }
    )


class TradedSchema(PriceSchema):
    """A user's stricter contract: every PriceSchema rule, plus two of their own."""

    @pa.check("volume", error="volume must be > 0 (a traded day)")
    @classmethod
    def traded(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("volume") > 0)

    @pa.dataframe_check(error="close must differ from open")
    @classmethod
    def moved(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("close") != pl.col("open"))


def test_a_user_extends_the_schema_and_validates_a_polars_frame() -> None:
    good = bars()
    assert TradedSchema.validate(good, lazy=True).equals(good)
    bad = good.with_columns(
        pl.Series("volume", [100.0, 100.0, 0.0, 100.0]),
        pl.Series("close", [10.5, 10.0, 10.5, 10.5]),
        pl.Series("high", [11.0, 11.0, 11.0, 10.0]),
    )
    with pytest.raises(pa.errors.SchemaErrors) as err:
        TradedSchema.validate(bad, lazy=True)
    cases = err.value.failure_cases
    assert set(zip(cases["check"], cases["index"], strict=True)) == {
        ("volume must be > 0 (a traded day)", 2),
        ("close must differ from open", 1),
        ("high must be >= max(open, close)", 3),  # inherited from PriceSchema
    }


def test_the_extended_schema_speaks_the_contracts_messages() -> None:
    bad = bars().with_columns(pl.Series("volume", [100.0, 100.0, 0.0, 100.0]))
    report = check_contract(bad, "notebook", schema=TradedSchema)
    with pytest.raises(DataError) as err:
        report.raise_for_errors()
    assert str(err.value) == (
        "notebook: column 'volume': volume must be > 0 (a traded day): 1 row(s) at row 2"
    )
    moved = bars().with_columns(pl.col("open").alias("close"))
    report = check_contract(moved, "notebook", schema=TradedSchema)
    assert [v.describe("notebook") for v in report.errors] == [
        "notebook: column '*': close must differ from open: 4 row(s) at row 0, row 1, row 2, row 3"
    ]
    assert check_contract(bars(), "notebook", schema=TradedSchema).errors == []


def test_schema_problems_are_reported_without_rows_and_without_a_crash() -> None:
    frame = bars().drop("date").with_columns(pl.col("close").cast(pl.Float32))
    with pytest.raises(DataError) as err:
        check_contract(frame, "x.parquet").raise_for_errors()
    assert str(err.value).splitlines() == [
        "x.parquet: column 'date': required column is missing",
        "x.parquet: column 'close': must be of type Float64, got Float32",
    ]


def test_a_rule_broken_on_every_row_gives_the_count_and_the_first_lines() -> None:
    frame = pl.concat([bars(10_000).with_columns(pl.lit(9.5).alias("high"))])
    report = check_contract(
        frame.with_row_index("row"), "big.csv", locate=lambda r: f"line {r + 2}"
    )
    assert [v.describe("big.csv") for v in report.errors] == [
        "big.csv: column 'high': high must be >= max(open, close): 10000 row(s) at "
        "line 2, line 3, line 4, line 5, line 6 (+9995 more)"
    ]


def test_commands_that_do_not_validate_do_not_import_pandera() -> None:
    code = (
        "import sys, pipeline.cli, pipeline.data.validation, pipeline.data.readers;"
        "print('pandera' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class WithSector(PriceSchema):
    """A user's contract that also requires a column of their own."""

    sector: str


def test_a_users_own_column_is_reported_and_the_contracts_rules_once() -> None:
    frame = bars().with_columns(pl.Series("high", [11.0, 10.0, 11.0, 11.0]))
    report = check_contract(frame, "notebook", schema=WithSector)
    assert [v.describe("notebook") for v in report.errors] == [
        "notebook: column 'high': high must be >= max(open, close): 1 row(s) at row 1",
        "notebook: column 'sector': required column is missing",
    ]
