"""A schema's failures as the contract's messages, and a one-pass screen that skips pandera.

pandera runs each check as several small Polars queries (~60 for ``PriceSchema``): about as
fast as one big query on 2.5M rows, but ~12 ms of fixed cost per call, which on
``POST /predict`` (a few hundred rows) made the contract 8x slower and roughly halved the
service's throughput under 8 concurrent clients. So ``broken_rules`` first evaluates the
schema's own rules (``keeps_every_rule`` in ``pipeline.data.price_rules``: the columns, null
handling and types the schema declares) in a single Polars query; only when that finds
something does pandera validate, lazily, to report every broken rule. Schemas other than
``PriceSchema`` (a user's subclass) always go to pandera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandera.polars as pa
import polars as pl
from pandera.constants import CHECK_OUTPUT_KEY
from pandera.errors import SchemaError, SchemaErrorReason, SchemaErrors

from pipeline.data.contract.schema import PriceSchema
from pipeline.data.price_rules import (
    DATE_RANGE,
    DUPLICATE,
    EMPTY_TICKER,
    FINITE_PRICE,
    FINITE_VOLUME,
    HIGH,
    INCREASING,
    LOW,
    OPTIONAL,
    PRICE_RANGE,
    VALID_TICKER,
    VOLUME_RANGE,
    keeps_every_rule,
)
from pipeline.data.validation import PRICES

# Messages come out in this order (the hand-written contract's, before pandera), whatever
# order pandera runs its checks in; other rules (a user's) follow in pandera's order.
ORDER = [
    *[(c, rule) for c in (*PRICES, *OPTIONAL) for rule in (FINITE_PRICE, PRICE_RANGE)],
    ("volume", FINITE_VOLUME),
    ("volume", VOLUME_RANGE),
    ("ticker", EMPTY_TICKER),
    ("ticker", VALID_TICKER),
    ("date", DATE_RANGE),
    ("high", HIGH),
    ("low", LOW),
    ("date", DUPLICATE),
    ("date", INCREASING),
]
# pandera's own checks are named by strings; these are their texts in the contract's messages.
BUILTIN = {
    "not_nullable": "values must not be missing",
    "column_in_dataframe": "required column is missing",
    "field_uniqueness": "values must be unique",
}


@dataclass(frozen=True)
class Broken:
    """One broken rule: the column, the rule's text and the 0-based positions of its rows.

    ``rows`` is empty for a rule about the frame's schema (a missing column, a wrong type).
    """

    column: str
    rule: str
    rows: pl.Series


def _rule(err: SchemaError) -> str:
    check: Any = err.check
    if isinstance(check, pa.Check):
        text = check.error or check.name or str(check)
    elif isinstance(check, str) and check.startswith("dtype("):
        text = f"must be of type {check[7:-2]}, got {err.failure_cases}"
    else:
        text = BUILTIN.get(str(check), str(check))
    if err.reason_code == SchemaErrorReason.CHECK_ERROR:  # e.g. a column it reads is missing
        text += f" (the check failed: {str(err.failure_cases).splitlines()[0]})"
    return text


def _broken(err: SchemaError) -> Broken:
    if err.reason_code == SchemaErrorReason.COLUMN_NOT_IN_DATAFRAME:
        column = str(err.failure_cases)  # reported by the schema, naming the column
    elif isinstance(err.schema, pa.Column):
        column = str(err.schema.name)
    else:
        column = "*"  # a dataframe-level check (a user's): pandera's key for "all columns"
    output = err.check_output
    if isinstance(output, pl.DataFrame) and CHECK_OUTPUT_KEY in output.columns:
        rows = output.get_column(CHECK_OUTPUT_KEY).not_().arg_true()
    else:
        rows = pl.Series("rows", [], dtype=pl.UInt32)
    return Broken(column, _rule(err), rows)


def _rank(broken: Broken) -> int:
    key = (broken.column, broken.rule)
    return ORDER.index(key) if key in ORDER else len(ORDER)


def pandera_broken_rules(
    frame: pl.DataFrame, schema: type[pa.DataFrameModel] = PriceSchema
) -> list[Broken]:
    """Every rule of ``schema`` that ``frame`` breaks, from one lazy pandera validation.

    Validation is forced on at full depth here, whatever ``PANDERA_VALIDATION_ENABLED`` or
    ``PANDERA_VALIDATION_DEPTH`` say: the pipeline's contract is not optional.
    """
    with pa.config.config_context(validation_enabled=True, validation_depth="SCHEMA_AND_DATA"):
        try:
            schema.validate(frame, lazy=True)
        except SchemaErrors as exc:
            return sorted((_broken(err) for err in exc.schema_errors), key=_rank)
    return []


def broken_rules(
    frame: pl.DataFrame, schema: type[pa.DataFrameModel] = PriceSchema
) -> list[Broken]:
    """Every rule of ``schema`` that ``frame`` breaks (``[]`` when it keeps them all).

    ``PriceSchema``'s rules are screened in one Polars query first; pandera validates only a
    frame that breaks one of them (or a schema the screen does not know), to report them all.
    """
    if schema is PriceSchema and keeps_every_rule(frame):
        return []
    return pandera_broken_rules(frame, schema)
