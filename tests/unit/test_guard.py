"""Static look-ahead guard: forbidden constructs are rejected by name, real features pass.

Each forbidden expression is also evaluated on a short series to show that it really does read
rows after t, so a rejection here is never of something harmless.
"""

from __future__ import annotations

import polars as pl
import pytest
from support import ALL_FAMILIES, REPO

from pipeline.config import load_config
from pipeline.features import library as lib
from pipeline.features.guard import LookAheadError, assert_causal
from pipeline.features.spec import build_feature_defs

X = pl.col("close")
N = pl.col("n")
FRAME = pl.DataFrame(
    {"close": [1.0, 4.0, None, 2.0, 8.0, 5.0, 3.0, 7.0], "n": [1] * 8, "date": range(8)}
)

SHIFT, AGG, REV = "negative or non-literal shift", "whole-partition aggregation", "reversed"
FORBIDDEN: dict[str, tuple[pl.Expr, str]] = {  # name: (expression, why it is rejected)
    "negative_shift": (X.shift(-1), SHIFT),
    "negative_diff": (X.diff(-1), SHIFT),
    "shift_by_column": (X.shift(N), SHIFT),  # Polars itself refuses it at run time
    "centred_rolling_mean": (X.rolling_mean(3, center=True), "centred window"),
    "centred_rolling_max": (X.rolling_max(3, center=True), "centred window"),
    "backward_fill": (X.fill_null(strategy="backward"), "backward fill"),
    "backward_fill_method": (X.backward_fill(), "backward fill"),
    "minus_whole_mean": (X - X.mean(), AGG),
    "over_whole_max": (X / X.max(), AGG),
    "reverse": (X.reverse(), "Reverse is not causal"),
    "reverse_cum_sum": (X.cum_sum(reverse=True), REV),
    "reverse_cum_max": (X.cum_max(reverse=True), REV),
    "forward_target": (lib.forward_log_return(X, horizon=1), SHIFT),
    "negative_shift_nested": (lib.rolling_mean(X.shift(-2), window=3) / X, SHIFT),
}
# Also forbidden; an earlier guard let each through (why: BUGS), so each stays a regression test.
SORTS = {
    "sort": X.sort(),
    "sort_desc": X.sort(descending=True),
    "sort_by": X.sort_by("date", descending=True),
    "gather": X.gather(list(range(7, -1, -1))),
}
SLIPS = {
    "shift_by_expression": X.shift(pl.lit(1) - 2),
    "shift_by_length": X.shift(pl.len().cast(pl.Int64) - 9),
    "negative_pct_change": X.pct_change(-1),
    "whole_column_rank": X.rank(),
    "interpolate": X.interpolate(),
}
_TOP = (
    "looked for Sort/SortBy/Gather only as a 'Function' label, but Polars 2.1 serialises them "
    "as top-level expression nodes ({'Sort': ...}); the walker yields those as nodes too"
)
_INT = (
    "took the first 'Int' anywhere in a computed shift offset as its value (shift(lit(1) - 2) "
    "read as +1, shift(len() - 9) as +9); Node.offsets is None for anything computed"
)
BUGS = {
    **dict.fromkeys(SORTS, _TOP),
    "shift_by_expression": _INT,
    "shift_by_length": _INT,
    "negative_pct_change": "checked Shift/Diff offsets only, so PctChange(-1) passed",
    "whole_column_rank": "had no rule for Rank, a whole-partition op",
    "interpolate": "had no rule for Interpolate (reads the next value)",
}
RUNNABLE = {
    **{k: e for k, (e, _) in FORBIDDEN.items() if k != "shift_by_column"},
    **SORTS,
    **SLIPS,
}


def reads_the_future(expr: pl.Expr) -> bool:
    """True if the value at some row t changes when only rows after t change."""
    base = FRAME.with_row_index("i")
    clean = base.select(expr.alias("f")).get_column("f")
    for t in range(FRAME.height - 1):
        changed = base.with_columns(
            close=pl.when(pl.col("i") > t).then(pl.col("close") * 10 + 1).otherwise("close")
        )
        dirty = changed.select(expr.alias("f")).get_column("f")
        if not clean.slice(0, t + 1).equals(dirty.slice(0, t + 1)):
            return True
    return False


@pytest.mark.parametrize("name", list(RUNNABLE))
def test_forbidden_constructs_really_read_the_future(name: str) -> None:
    assert reads_the_future(RUNNABLE[name])


@pytest.mark.parametrize("name", list(FORBIDDEN))
def test_forbidden_construct_is_rejected_naming_the_feature(name: str) -> None:
    expr, why = FORBIDDEN[name]
    with pytest.raises(LookAheadError, match=f"^feature '{name}': {why}"):
        assert_causal(expr, name)


def test_the_target_is_rejected_as_a_feature() -> None:
    with pytest.raises(LookAheadError, match=f"^feature 'target': {SHIFT}"):
        assert_causal(lib.forward_log_return(pl.col("close"), horizon=5), "target")


@pytest.mark.parametrize(
    "name",
    list(BUGS),
)
def test_guard_gaps_are_rejected(name: str) -> None:
    with pytest.raises(LookAheadError, match=f"^feature '{name}'"):
        assert_causal({**SORTS, **SLIPS}[name], name)


@pytest.mark.parametrize(
    "expr",
    [X.shift(1), X.shift(0), X.diff(3), X.rolling_mean(3), X.cum_sum(), X.ewm_mean(alpha=0.5)],
    ids=["shift_1", "shift_0", "diff_3", "rolling_mean", "cum_sum", "ewm"],
)
def test_causal_constructs_pass(expr: pl.Expr) -> None:
    assert_causal(expr, "ok")
    assert not reads_the_future(expr)


@pytest.mark.parametrize(
    "expr",
    [
        pl.col("Sort") - pl.col("Over"),  # columns named like forbidden nodes
        X.alias("Reverse"),
        pl.when(X > 1).then(pl.lit("Rank")).otherwise(pl.lit("Gather")),
        pl.col("center") * pl.col("reverse"),  # ... and like forbidden flags
    ],
    ids=["columns", "alias", "literals", "flag_columns"],
)
def test_names_like_forbidden_constructs_pass(expr: pl.Expr) -> None:
    assert_causal(expr, "ok")


def test_a_string_offset_is_not_read_as_a_number() -> None:
    """shift(lit("5")) was read as shift(5) by scraping digits from the JSON; now refused."""
    with pytest.raises(LookAheadError, match=f"^feature 's': {SHIFT}"):
        assert_causal(X.shift(pl.lit("5")), "s")


@pytest.mark.parametrize("which", ["shipped", "all_families"])
def test_every_built_expression_passes(which: str) -> None:
    cfg = load_config(REPO / "conf").model.features if which == "shipped" else ALL_FAMILIES
    defs = build_feature_defs(cfg)  # runs the guard on every per-ticker def
    per_ticker = [d for d in defs if d.partition == "ticker"]
    enabled = {k for k in type(cfg).model_fields if getattr(cfg, k) is not None}
    if which == "all_families":
        assert enabled == set(type(cfg).model_fields)
        assert len(defs) - len(per_ticker) == 6  # 3 cross-sectional inputs x rank, zscore
    else:
        assert len(per_ticker) == len(defs) == 40
    for d in per_ticker:
        assert_causal(d.expr, d.name)


def test_cross_sectional_exprs_would_be_rejected_per_ticker() -> None:
    """They aggregate over a date by design; that is why the guard skips partition='date'."""
    cs = [d for d in build_feature_defs(ALL_FAMILIES) if d.partition == "date"]
    assert [d.name for d in cs] == [
        f"cs_{s}_{n}" for n in ("logret_5", "rsi_14", "beta_spy_20") for s in ("rank", "zscore")
    ]
    for d in cs:
        with pytest.raises(LookAheadError, match=f"^feature '{d.name}': ({AGG}|Rank)"):
            assert_causal(d.expr, d.name)
