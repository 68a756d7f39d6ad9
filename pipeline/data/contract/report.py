"""A pandera schema's failures as the contract's messages, read from ``failure_cases``.

The contract's own rules never need pandera: ``rules.find_broken`` evaluates them in one
Polars pass. pandera runs only for a user's subclass of ``PriceSchema``, for the checks the
user added; its failures are read through pandera's public ``SchemaErrors.failure_cases``
frame (columns ``schema_context``, ``column``, ``check``, ``failure_case``, ``index``), not
through ``SchemaError`` objects, whose attributes change between minor versions.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.errors import SchemaErrors

from pipeline.data.contract.schema import PriceSchema
from pipeline.data.rules import MISSING_COLUMN, RULES, Broken, find_broken

# pandera's own checks are named by strings; these are their texts in the contract's messages.
BUILTIN = {
    "not_nullable": "values must not be missing",
    "column_in_dataframe": MISSING_COLUMN,
    "field_uniqueness": "values must be unique",
}
# The contract's row rules, which find_broken reports itself.
OWN = {(r.column, r.message) for r in RULES}


def _rule(check: str, case: str | None, rows: int) -> str:
    """The message of one pandera check, from its name (or ``error``) and a failure case."""
    if check.startswith("dtype("):
        return f"must be of type {check[7:-2]}, got {case}"
    text = BUILTIN.get(check, check)
    if not rows and case is not None and check not in BUILTIN:  # the check itself raised
        text += f" (the check failed: {case.splitlines()[0]})"
    return text


def _from_failure_cases(cases: pl.DataFrame) -> list[Broken]:
    """One ``Broken`` per (column, check) of pandera's ``failure_cases``, in pandera's order."""
    groups = cases.group_by("schema_context", "column", "check", maintain_order=True).agg(
        pl.col("index").drop_nulls().sort().cast(pl.UInt32).alias("rows"),
        pl.col("failure_case").first().alias("case"),
    )
    found = []
    for context, column, check, rows, case in groups.iter_rows():
        if check == "column_in_dataframe":
            column = case  # reported by the schema, naming the column
        elif context == "DataFrameSchema":
            column = "*"  # a dataframe-level check (a user's): pandera's key for all columns
        text = _rule(str(check), case, len(rows))
        found.append(Broken(str(column), text, pl.Series("rows", rows, dtype=pl.UInt32)))
    return found


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
            return _from_failure_cases(exc.failure_cases)
    return []


def user_broken_rules(
    frame: pl.DataFrame, schema: type[pa.DataFrameModel], found: list[Broken]
) -> list[Broken]:
    """The failures of the checks ``schema`` adds to the contract, in pandera's order, given
    ``found``, what ``find_broken`` reported; ``[]`` for ``PriceSchema``, not run in pandera.

    A subclass's own field declarations (a column it makes required) are kept: only what
    ``find_broken`` reports itself, every contract rule and ``found``, is left out.
    """
    if schema is PriceSchema:
        return []
    seen = OWN | {(b.column, b.rule) for b in found}
    return [b for b in pandera_broken_rules(frame, schema) if (b.column, b.rule) not in seen]


def broken_rules(
    frame: pl.DataFrame, schema: type[pa.DataFrameModel] = PriceSchema
) -> list[Broken]:
    """Every rule of ``schema`` that ``frame`` breaks (``[]`` when it keeps them all): the
    contract's own in one Polars pass, then the user's, if any, from pandera."""
    found = find_broken(frame)
    return found + user_broken_rules(frame, schema, found)
