"""Hoist stateful window kernels out of feature expressions, computed once each, per ticker.

Exponential smoothers (EWM, Wilder) and rolling kernels that keep running sums (mean, sum,
std, var, skew, cov, corr) carry state from row to row: on the whole sorted column, the
previous ticker's values (or at least their rounding) would leak into the next ticker, so they
must be computed per ticker (``.over``). But ``.over`` costs a group scatter per expression,
and the shipped set repeats the same kernels (EMA 12 and 26 four times each across the MACD
columns, the Bollinger mean and std twice, the 20-day mean volume twice ...). So the engine
lifts every distinct stateful subtree into a temporary column computed once, per ticker
(``.over``), one dependency level after the other, and rewrites each feature to read those
columns. Each kernel still runs per ticker, on that ticker's rows only, so a ticker's values
never depend on another ticker's, not even in the last bit.

Rolling min and max keep no arithmetic state (each value is one of the window's inputs), so
they stay in the feature and run on the whole column under the engine's warm-up mask.

The rewriting works on Polars' serialised tree (the JSON ``walker`` reads): a stateful node is
replaced by ``{"Column": name}``, innermost first, so a kernel over another's output (the MACD
signal) lands one level later and reads the earlier columns.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import polars as pl

PREFIX = "__hoisted_"
# Function labels of Polars' recursive exponential smoothers.
_SMOOTHERS = frozenset({"EwmMean", "EwmStd", "EwmVar"})
ROLLING = "RollingExpr"
# Rolling kernels that are exact on the whole column: they pick a value, they sum nothing.
EXACT_ROLLING = frozenset({"Min", "Max"})


@dataclass
class Hoisted:
    """Distinct stateful kernel subtrees by serialised form, their column names and levels."""

    names: dict[str, str] = field(default_factory=dict)  # serialised subtree -> column
    levels: dict[str, int] = field(default_factory=dict)  # column -> dependency level (1, 2..)

    def rewrite(self, serialized: str) -> str | None:
        """The expression with every stateful kernel read from a column; None if it has none."""
        before = len(self.names)
        tree, _ = self._rewrite(json.loads(serialized))
        changed = len(self.names) > before or _reads(tree, self.levels)
        return json.dumps(tree) if changed else None

    def check(self, known: dict[str, str]) -> None:
        """Raise InexactError unless every subtree hoisted since ``known`` reads back exactly."""
        for text in self.names.keys() - known.keys():
            deserialize(text)

    def reads(self, expr: pl.Expr) -> set[str]:
        """Hoisted columns an expression reads, directly or through other hoisted kernels."""
        texts = {name: text for text, name in self.names.items()}
        todo = set(expr.meta.root_names()) & texts.keys()
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            seen.add(name)
            todo |= (_columns(json.loads(texts[name])) & texts.keys()) - seen
        return seen

    def discard(self, names: set[str]) -> None:
        """Forget hoisted kernels (their only reader computes them itself)."""
        self.names = {t: n for t, n in self.names.items() if n not in names}
        self.levels = {n: lv for n, lv in self.levels.items() if n not in names}

    def stages(self, ticker: str) -> list[list[pl.Expr]]:
        """Per dependency level, that level's kernels, each computed per ticker."""
        by_level: dict[int, list[pl.Expr]] = {}
        for text, name in self.names.items():
            expr = deserialize(text).over(ticker, mapping_strategy="explode").alias(name)
            by_level.setdefault(self.levels[name], []).append(expr)
        return [exprs for _, exprs in sorted(by_level.items())]

    def _rewrite(self, value: Any) -> tuple[Any, int]:
        """(rewritten value, deepest smoother level it reads)."""
        if isinstance(value, list):
            pairs = [self._rewrite(item) for item in value]
            return [v for v, _ in pairs], max((lv for _, lv in pairs), default=0)
        if not isinstance(value, dict):
            return value, 0
        if set(value) == {"Column"}:
            return value, self.levels.get(value["Column"], 0)
        out, deepest = {}, 0
        for key, item in value.items():
            out[key], level = self._rewrite(item)
            deepest = max(deepest, level)
        if _is_stateful(out):
            return self._column(out, deepest + 1)
        return out, deepest

    def _column(self, node: dict[str, Any], level: int) -> tuple[dict[str, Any], int]:
        text = json.dumps(node, sort_keys=True)
        name = self.names.setdefault(text, f"{PREFIX}{len(self.names)}")
        self.levels[name] = level
        return {"Column": name}, level


def _is_stateful(node: dict[str, Any]) -> bool:
    """An EWM, or a rolling kernel other than min/max (they carry arithmetic state)."""
    payload = node.get("Function")
    if len(node) != 1 or not isinstance(payload, dict):
        return False
    label = payload.get("function")
    if not (isinstance(label, dict) and len(label) == 1):
        return False
    name, params = next(iter(label.items()))
    if name == ROLLING:
        kernel = params.get("function") if isinstance(params, dict) else None
        return not (isinstance(kernel, str) and kernel in EXACT_ROLLING)
    return name in _SMOOTHERS


def _columns(tree: Any) -> set[str]:
    """Every column name a serialised tree reads."""
    if isinstance(tree, list):
        return set().union(*(_columns(item) for item in tree))
    if isinstance(tree, dict):
        if set(tree) == {"Column"} and isinstance(tree["Column"], str):
            return {tree["Column"]}
        return set().union(*(_columns(item) for item in tree.values()))
    return set()


def _reads(tree: Any, levels: dict[str, int]) -> bool:
    """Whether the tree reads a hoisted column (a subtree seen before adds no new name)."""
    if isinstance(tree, list):
        return any(_reads(item, levels) for item in tree)
    if isinstance(tree, dict):
        if set(tree) == {"Column"}:
            return tree["Column"] in levels
        return any(_reads(item, levels) for item in tree.values())
    return False


class InexactError(ValueError):
    """An expression did not come back from JSON exactly as written."""


def deserialize(text: str) -> pl.Expr:
    """An expression back from the JSON ``walker.serialize`` writes, every float exact.

    Polars' JSON reader can round a float's shortest decimal form to a neighbouring double
    (EWM alpha 0.18181818181818182 came back one ulp off), so each float is written in a form
    it reads exactly (``_exact_float``), and the result is checked by serialising it again.
    """
    tree = json.loads(text)
    expr = pl.Expr.deserialize(io.StringIO(_write(tree)), format="json")
    if json.loads(expr.meta.serialize(format="json")) != tree:
        raise InexactError(text)
    return expr


def _write(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_write(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_write(v) for v in value) + "]"
    if isinstance(value, float):
        return _exact_float(value)
    return json.dumps(value)


@cache
def _exact_float(x: float) -> str:
    """A decimal text of ``x`` that Polars reads back as exactly ``x``."""
    candidates = [repr(x), format(x, ".17g"), format(x, ".25g")]
    for direction in (-math.inf, math.inf):
        y = x
        for _ in range(4):
            y = math.nextafter(y, direction)
            candidates += [repr(y), format(y, ".17g")]
    for text in candidates:
        probe = pl.Expr.deserialize(
            io.StringIO(f'{{"Literal":{{"Dyn":{{"Float":{text}}}}}}}'), format="json"
        )
        if json.loads(probe.meta.serialize(format="json"))["Literal"]["Dyn"]["Float"] == x:
            return text
    raise InexactError(repr(x))
