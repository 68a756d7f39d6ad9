"""Apply feature defs per ticker on a (Lazy)Frame of prices; the same code trains and scores.

Every def is computed as if alone on its ticker's rows, bit for bit what ``.over(ticker)``
gives. How that is achieved depends on the expression, because ``.over(ticker)`` has a fixed
cost per expression (20-40 ms at 2.5M rows) and nothing is shared between features inside it:

* pointwise expressions (every node reads row t only) need no partitioning at all;
* expressions built only from pointwise nodes, shifts/diffs and rolling min/max are computed
  over the whole sorted column and masked to null for each ticker's first ``warmup`` rows: the
  value at t reads exactly rows t-k..t (``reach``; a def whose warm-up is shorter keeps
  ``.over``) and min/max keep no running sum, so nothing of another ticker reaches it;
* stateful kernels (EWM, Wilder, rolling mean/sum/std/var/skew/cov/corr) must run per ticker:
  a running sum would carry the previous ticker's rounding into the next. A kernel that
  several defs share (the MACD EMAs, the Bollinger mean and std, the 20-day mean volume) is
  hoisted by ``hoist`` into a column computed once per ticker, and those defs read it; a def
  whose kernels no other def shares runs whole under its own ``.over(ticker)``;
* anything else runs ``.over(ticker)``, the reference the fast paths match.

Expressions are classified by the nodes ``walker`` finds in them, so a column or string named
like a function changes nothing.

Frames are collected with Polars' in-memory engine: faster than the default streaming engine
on these window queries and independent of the thread count in the last bits.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import cache
from typing import Literal, TypeVar

import polars as pl
import polars.selectors as cs

from pipeline.features.hoist import Hoisted, InexactError, deserialize
from pipeline.features.library import forward_log_return
from pipeline.features.reach import is_fixed_trailing_window, rows_back
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


@cache
def _bounded_window(serialized: str, warmup: int) -> bool:
    """Only pointwise nodes, literal shifts and fixed trailing windows, all within ``warmup``.

    Then the whole-column value at every row the warm-up mask keeps reads that ticker's rows
    only. A warm-up shorter than the rows actually read keeps ``.over`` (never a leak).
    """
    for node in walk_json(serialized):
        if _node_kind(node) == "window" and not is_fixed_trailing_window(node):
            return False
    reach = rows_back(serialized)
    return reach is not None and reach <= warmup


def per_ticker(expr: pl.Expr) -> pl.Expr:
    """``expr`` over each ticker's rows, for a frame sorted by (ticker, date).

    ``mapping_strategy="explode"`` concatenates the groups' results in group order instead of
    scattering each row back to its position: the same values in the same places when every
    ticker's rows are contiguous and in ticker order, which ``add_features`` sorts for first
    (the engine tests compare it with plain ``.over`` bit for bit on interleaved input).
    """
    return expr.over(TICKER, mapping_strategy="explode")


def _masked(expr: pl.Expr, d: FeatureDef) -> pl.Expr:
    # Whole sorted column, then each ticker's first `warmup` rows nulled: no per-group
    # scatter, and what is left (shifts, rolling min/max) reads exact values, never sums.
    return pl.when(pl.col(_POS) >= d.warmup).then(expr).alias(d.name)


def _per_ticker(d: FeatureDef, hoisted: Hoisted) -> pl.Expr:
    serialized = serialize(d.expr)
    kind = _kind_of(serialized)
    if kind == "point":
        return d.expr.alias(d.name)
    if kind == "shift" or _bounded_window(serialized, d.warmup):
        return _masked(d.expr, d)
    # Stateful kernels once per ticker in hoisted columns; the rest whole-column, if bounded.
    snapshot = (dict(hoisted.names), dict(hoisted.levels))
    try:
        expr = _rewritten(d, hoisted.rewrite(serialized))
        hoisted.check(snapshot[0])
    except InexactError:
        expr = None
    if expr is not None:
        return expr
    hoisted.names, hoisted.levels = snapshot  # nothing of this def is hoisted after all
    return per_ticker(d.expr).alias(d.name)


def _rewritten(d: FeatureDef, rest: str | None) -> pl.Expr | None:
    """The def reading hoisted columns, or None if what is left is not whole-column safe."""
    if rest is not None and rows_back(rest) == 0 and _bounded_window(rest, 0):
        # Pointwise over per-ticker columns: already the .over value at every row, no mask.
        return deserialize(rest).alias(d.name)
    if rest is not None and _bounded_window(rest, d.warmup):
        return _masked(deserialize(rest), d)
    return None


def _plan(defs: list[FeatureDef]) -> tuple[Hoisted, list[pl.Expr]]:
    """(hoisted kernels, per-ticker expressions).

    A def whose hoisted kernels no other def reads runs whole under its own ``.over``: a
    temporary column per kernel would cost memory for nothing shared.
    """
    hoisted = Hoisted()
    exprs = {d.name: _per_ticker(d, hoisted) for d in defs}
    reads = {name: hoisted.reads(e) for name, e in exprs.items()}
    uses = Counter(col for cols in reads.values() for col in cols)
    solo = [d for d in defs if reads[d.name] and all(uses[c] == 1 for c in reads[d.name])]
    hoisted.discard(set().union(*(reads[d.name] for d in solo)))
    for d in solo:
        exprs[d.name] = per_ticker(d.expr).alias(d.name)
    return hoisted, list(exprs.values())


def _stored(expr: pl.Expr, d: FeatureDef) -> pl.Expr:
    # Cast inside each column's own expression, so that only one Float64 column at a time
    # exists before rounding (casting the finished frame would hold all of them at once).
    return expr.cast(pl.Float32) if d.dtype == "float32" else expr


def add_features(frame: FrameT, defs: list[FeatureDef]) -> FrameT:
    """Sort by (ticker, date) and append one column per def, as if computed per ticker.

    Cross-sectional defs are then computed ``.over(date)`` from the per-ticker columns.
    """
    plan = _compiled(defs)
    out = frame.sort(TICKER, DATE).with_columns(per_ticker(pl.int_range(pl.len())).alias(_POS))
    for stage in plan.stages:
        out = out.with_columns(stage)
    out = out.with_columns(plan.per_ticker).drop(_POS, *plan.temporary)
    if plan.per_date:
        out = out.with_columns(plan.per_date)
    return out.with_columns(finite_or_null([d.name for d in defs]))


def finite_or_null(names: list[str]) -> pl.Expr:
    """Each named float column with +-inf and NaN made null: the one place features become
    finite (integer and other columns cannot hold either).

    A flat stretch of prices gives a zero rolling std or range, and a ratio over it is
    +-inf or NaN whatever the family; a Float64 beyond Float32's range becomes inf when
    stored as float32. Null is what the imputer, the contract and the drift monitor already
    treat as "not defined here", so every feature leaves the engine finite or null.
    """
    floats = cs.by_name(*names, require_all=False) & cs.float()
    return pl.when(floats.is_finite()).then(floats).name.keep()


@dataclass(frozen=True)
class _Compiled:
    """The expressions ``add_features`` runs for one list of defs."""

    stages: list[list[pl.Expr]]  # hoisted kernels, level by level
    per_ticker: list[pl.Expr]
    per_date: list[pl.Expr]
    temporary: tuple[str, ...]  # the hoisted columns, dropped at the end


# Planning serialises and rewrites every def (~6 ms for the shipped set): more than the
# features themselves on one request's few hundred bars. A model's transformer passes the
# same def objects on every call, so plans are kept by the defs' identities; each entry holds
# its defs, so no id is reused while it is cached.
_PLANS: OrderedDict[tuple[int, ...], tuple[tuple[FeatureDef, ...], _Compiled]] = OrderedDict()
_PLANS_KEPT = 64


def _compiled(defs: list[FeatureDef]) -> _Compiled:
    key = tuple(map(id, defs))
    hit = _PLANS.get(key)
    if hit is not None:
        return hit[1]
    ticker_defs = [d for d in defs if d.partition == "ticker"]
    date_defs = [d for d in defs if d.partition == "date"]
    hoisted, planned = _plan(ticker_defs)
    plan = _Compiled(
        stages=hoisted.stages(TICKER),
        per_ticker=[_stored(e, d) for e, d in zip(planned, ticker_defs, strict=True)],
        per_date=[_stored(d.expr.over(DATE), d).alias(d.name) for d in date_defs],
        temporary=tuple(hoisted.levels),
    )
    _PLANS[key] = (tuple(defs), plan)
    while len(_PLANS) > _PLANS_KEPT:  # racing threads may both add: trim, never fail
        _PLANS.popitem(last=False)
    return plan


def add_target(frame: FrameT, horizon: int) -> FrameT:
    """Append the forward log return over ``horizon`` rows, per ticker (null at the tail)."""
    expr = per_ticker(forward_log_return(pl.col("close"), horizon=horizon)).alias(TARGET)
    return frame.sort(TICKER, DATE).with_columns(expr)


def collect(frame: pl.LazyFrame) -> pl.DataFrame:
    """Collect a feature query the way training and scoring both do."""
    return frame.collect(engine="in-memory")
