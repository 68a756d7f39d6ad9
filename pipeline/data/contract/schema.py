"""``PriceSchema``: the contract's rules (``pipeline.data.rules``) as a pandera model.

The model is built from ``rules.COLUMNS`` and ``rules.RULES``, so pandera and the pipeline's
own one-pass evaluation (``rules.find_broken``) run the very same expressions: a column per
``Column`` (``required=False`` for the optional ones) and a check per ``Rule``, on the column
the rule names, with the rule's name and its message as ``error``. Every column is
``nullable`` and every check has ``ignore_na=False``: each rule's expression says itself what
a null (or NaN) cell means, so pandera's null semantics never enter. Other columns are allowed
(``strict=False``): pipelines carry a ``row`` number for messages.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any, Optional

import pandera.polars as pa
import polars as pl

from pipeline.data.rules import COLUMNS, RULES, Rule

DOC = """Daily bars in the canonical long layout: one row per (ticker, date).

Columns and types, finite positive prices within [1e-12, 1e15], volume in [0, 1e18],
high >= max(open, close), low <= min(open, close), dates in 1800..2199, non-empty
tickers that keep the ticker rule (``pipeline.data.tickers``, case and spaces ignored),
unique (ticker, date) and strictly increasing dates per ticker (in frame order).
Subclass it to add checks; ``check_contract(frame, name, schema=MySchema)`` reports them.
"""


def _check(rule: Rule) -> Any:
    """The pandera check of ``rule``: True where a row keeps it."""

    def keeps(cls: type, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(rule.broken.not_().alias(data.key))

    keeps.__name__ = rule.name
    check = pa.check(rule.column, name=rule.name, error=rule.message, ignore_na=False)
    return check(classmethod(keeps))


def _namespace(ns: dict[str, Any]) -> None:
    """Fill the class body: annotations and fields from COLUMNS, checks from RULES."""
    annotations: dict[str, Any] = {}
    for column in COLUMNS:
        dtype = type(column.dtype)  # pandera reads Polars dtype classes as annotations
        annotations[column.name] = dtype if column.required else Optional[dtype]  # noqa: UP045
        ns[column.name] = pa.Field(nullable=True)
    ns["__annotations__"] = annotations
    ns["Config"] = type("Config", (), {"strict": False})
    ns.update({rule.name: _check(rule) for rule in RULES})
    ns["__module__"], ns["__doc__"] = __name__, DOC


if TYPE_CHECKING:  # what type checkers see; the model itself is built below

    class PriceSchema(pa.DataFrameModel):
        """Daily bars in the canonical long layout (built from ``pipeline.data.rules``)."""

else:
    PriceSchema = types.new_class("PriceSchema", (pa.DataFrameModel,), exec_body=_namespace)
