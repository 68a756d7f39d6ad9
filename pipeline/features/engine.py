"""Apply feature defs per ticker on a (Lazy)Frame of prices; the same code trains and scores.

Every def is computed as if alone on its ticker's rows. How that is achieved depends on the
expression, because ``.over(ticker)`` has a fixed cost per expression:

* pointwise expressions (every node reads row t only) need no partitioning at all;
* expressions built only from pointwise nodes and shifts/diffs are computed over the whole
  sorted column and masked to null for each ticker's first ``warmup`` rows: the value at t
  reads exactly rows t-k..t, so this is bit-identical to ``.over(ticker)`` (a test compares
  both on a panel);
* everything else runs ``.over(ticker)``: windowed and recursive expressions (rolling, EWM,
  cumulative, forward fill), whose running state would otherwise cross tickers, and any node
  this module does not know, since ``.over(ticker)`` is the reference the fast paths match.

Expressions are classified by the nodes ``walker`` finds in them, so a column or string named
like a function changes nothing.

Frames are collected with Polars' in-memory engine: faster than the default streaming engine
on these window queries and independent of the thread count in the last bits.
"""

from __future__ import annotations

from functools import cache
from typing import Literal, TypeVar

import polars as pl

from pipeline.features.library import forward_log_return
from pipeline.features.spec import FeatureDef
from pipeline.features.walker import Node, serialize, walk_json

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)

TICKER = "ticker"
DATE = "date"
TARGET = "target"
_POS = "__pos__"

Kind = Literal["point", "shift", "window"]

# Nodes whose value at row t reads row t only, by name or, where a namespace also holds
# whole-column functions (Boolean.IsDuplicated), by name.tag. An allow-list: a node missing
# here only costs speed (.over(ticker)); a wrong entry would silently mix tickers.
_POINTWISE = frozenset(
    {
        *("Column", "Literal", "BinaryExpr", "Ternary", "Cast", "Alias"),
        *("Abs", "Negate", "Sign", "Log", "Log1p", "Exp", "Pow", "Trigonometry"),
        *("Clip", "Round", "Floor", "Ceil", "FillNull", "Coalesce"),
        *("MaxHorizontal", "MinHorizontal", "SumHorizontal", "MeanHorizontal"),
        *(f"Boolean.{f}" for f in ("Not", "IsNull", "IsNotNull", "IsNan", "IsNotNan")),
        *(f"Boolean.{f}" for f in ("IsFinite", "IsInfinite")),
        *(f"TemporalExpr.{f}" for f in ("Year", "Quarter", "Month", "Week", "WeekDay")),
        *(f"TemporalExpr.{f}" for f in ("Day", "OrdinalDay", "DaysInMonth", "IsLeapYear")),
    }
)
# Row offsets that are null for a ticker's first k rows, as the warm-up mask assumes.
_SHIFTS = frozenset({"Shift", "Diff", "PctChange"})


def _node_kind(node: Node) -> Kind:
    if node.name in _SHIFTS:
        return "shift"
    if node.name in _POINTWISE or node.qualified in _POINTWISE:
        return "point"
    return "window"


@cache
def _kind_of(serialized: str) -> Kind:
    kinds = {_node_kind(node) for node in walk_json(serialized)}
    if "window" in kinds:
        return "window"
    return "shift" if "shift" in kinds else "point"


def expression_kind(expr: pl.Expr) -> Kind:
    """How an expression depends on earlier rows: not at all, by fixed shifts, or otherwise."""
    return _kind_of(serialize(expr))


def _per_ticker(d: FeatureDef) -> pl.Expr:
    kind = expression_kind(d.expr)
    if kind == "point":
        return d.expr.alias(d.name)
    if kind == "shift":
        return pl.when(pl.col(_POS) >= d.warmup).then(d.expr).alias(d.name)
    return d.expr.over(TICKER).alias(d.name)


def add_features(frame: FrameT, defs: list[FeatureDef]) -> FrameT:
    """Sort by (ticker, date) and append one column per def, as if computed per ticker.

    Cross-sectional defs are then computed ``.over(date)`` from the per-ticker columns.
    """
    per_ticker = [_per_ticker(d) for d in defs if d.partition == "ticker"]
    per_date = [d.expr.over(DATE).alias(d.name) for d in defs if d.partition == "date"]
    out = (
        frame.sort(TICKER, DATE)
        .with_columns(pl.int_range(pl.len()).over(TICKER).alias(_POS))
        .with_columns(per_ticker)
        .drop(_POS)
    )
    return out.with_columns(per_date) if per_date else out


def add_target(frame: FrameT, horizon: int) -> FrameT:
    """Append the forward log return over ``horizon`` rows, per ticker (null at the tail)."""
    expr = forward_log_return(pl.col("close"), horizon=horizon).over(TICKER).alias(TARGET)
    return frame.sort(TICKER, DATE).with_columns(expr)


def collect(frame: pl.LazyFrame) -> pl.DataFrame:
    """Collect a feature query the way training and scoring both do."""
    return frame.collect(engine="in-memory")
