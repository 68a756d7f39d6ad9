"""One walker over a Polars expression's serialised tree, for the causality guard only.

The feature engine does not read serialised expressions (families declare their stages,
``stages.py``): Polars does not promise this format across versions, and the guard, which
fails closed, is the one reader left (``tests/unit/test_polars_format.py`` pins what it reads).

Polars serialises an expression to JSON in serde's externally tagged form: an enum variant is an
object with one CamelCase key (``{"Sort": {...}}``, ``{"Function": {...}}``, ``{"Backward":
null}``) and a struct field is a snake_case key (``"input"``, ``"options"``, ``"center"``).
The walker reads that structure rather than the text, so a column, alias or string literal
named ``"Shift"`` or ``"Rolling"`` is data, never a node.

It yields one ``Node`` per variant, parents before children (pre-order, in serialised order).
A ``Function`` variant and its label become one node named after the label (``Shift``,
``RollingExpr``, ``CumSum``), carrying its input expressions and its parameters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl

# Variants whose content is data (a name, a value), not expressions: never walked into.
_OPAQUE = frozenset({"Column", "Literal", "Field", "Selector"})
# Expressions serialised as a bare string (unit variants) rather than a one-key object.
UNIT_EXPRESSIONS = frozenset({"Len", "Element"})
# Functions whose second input (or integer parameter) is a row offset.
OFFSET_FUNCTIONS = frozenset({"Shift", "Diff", "PctChange", "ShiftAndFill"})


@dataclass(frozen=True)
class Node:
    """One variant of the tree.

    ``variant`` is the serialised key (``Function``, ``Sort``, ``Agg``, ``Column`` ...);
    ``name`` is the same except for functions, where it is the function's label. ``tag`` is
    the sub-variant that qualifies the payload, if any (``Boolean`` -> ``IsDuplicated``,
    ``FillNullWithStrategy`` -> ``Backward``, ``Literal`` -> ``Dyn``). ``options`` are the
    scalar fields set on this node, through plain objects but not into other nodes
    (``window_size``, ``center``, ``reverse``). ``inputs`` are a function's argument
    expressions, raw, the series it applies to first.
    """

    variant: str
    name: str
    path: str
    payload: Any = None
    tag: str | None = None
    inputs: tuple[Any, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def qualified(self) -> str:
        """``name.tag`` when tagged (``Boolean.IsNull``), else ``name``."""
        return f"{self.name}.{self.tag}" if self.tag else self.name

    @property
    def offsets(self) -> tuple[int | None, ...]:
        """A shift-like function's row offsets: the literal value, None where computed."""
        if self.name not in OFFSET_FUNCTIONS:
            return ()
        raw = [self.inputs[1]] if len(self.inputs) > 1 else []
        # An integer parameter is an offset too (how older formats stored diff's n).
        raw += [self.payload] if isinstance(self.payload, int) else []
        return tuple(literal_int(node) for node in raw)


def literal_int(node: Any) -> int | None:
    """The value of a plain integer literal (``{"Literal": {"Dyn": {"Int": 1}}}``), else None.

    Anything computed, even from literals (``lit(1) - 2``), is None: reading it would mean
    evaluating it.
    """
    if isinstance(node, int) and not isinstance(node, bool):
        return node
    if not (isinstance(node, dict) and set(node) == {"Literal"}):
        return None
    kind, value = _single(node["Literal"])
    if kind not in {"Dyn", "Scalar"}:
        return None
    dtype, number = _single(value)  # {"Int": 1} when dynamic, {"Int64": 1} when typed
    is_int = isinstance(number, int) and not isinstance(number, bool)
    return number if is_int and (dtype or "").startswith(("Int", "UInt")) else None


def serialize(expr: pl.Expr) -> str:
    """The JSON text the walker reads (also a cache key: equal expressions serialise equally)."""
    return expr.meta.serialize(format="json")


def walk(expr: pl.Expr) -> Iterator[Node]:
    """Every node of ``expr``, parents first."""
    return walk_json(serialize(expr))


def walk_json(serialized: str) -> Iterator[Node]:
    """Every node of an expression serialised by ``serialize``."""
    return _walk(json.loads(serialized), "expr")


def _walk(value: Any, path: str) -> Iterator[Node]:
    if isinstance(value, str) and value in UNIT_EXPRESSIONS:
        yield Node(value, value, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}"
            yield from _variant(key, item, sub) if _is_variant(key) else _walk(item, sub)


def _variant(key: str, payload: Any, path: str) -> Iterator[Node]:
    if key == "Function" and isinstance(payload, dict):
        yield from _function(payload, path)
        return
    tag = None if key == "Column" else _tag(payload)  # a column's payload is its name
    yield Node(key, key, path, payload, tag, options=_options(payload))
    if key == "Alias" and isinstance(payload, list):
        payload = payload[:1]  # [expression, new name]: the name is data
    if key not in _OPAQUE:
        yield from _walk(payload, path)


def _function(payload: dict[str, Any], path: str) -> Iterator[Node]:
    label = payload.get("function")
    name, params = (label, None) if isinstance(label, str) else _single(label)
    name = name or "Function"  # an unknown shape: still a node, matched by no rule
    inputs = payload.get("input", [])
    inputs = inputs if isinstance(inputs, list) else []
    node_path = f"{path}.{name}"
    yield Node("Function", name, node_path, params, _tag(params), tuple(inputs), _options(params))
    yield from _walk(inputs, f"{path}.input")
    yield from _walk(params, node_path)


def _options(payload: Any) -> dict[str, Any]:
    """Scalar snake_case fields of ``payload``, through plain objects; the first one wins."""
    found: dict[str, Any] = {}
    if isinstance(payload, dict):
        for key, value in payload.items():
            if _is_variant(key):
                continue  # another node: its fields are its own
            if isinstance(value, dict):
                found = {**_options(value), **found}
            elif not isinstance(value, list):
                found.setdefault(key, value)
    return found


def _tag(payload: Any) -> str | None:
    """The variant a payload holds: a unit variant's string, or a one-key object's key."""
    if isinstance(payload, str):
        return payload
    key, _ = _single(payload)
    return key if key is not None and _is_variant(key) else None


def _single(value: Any) -> tuple[str | None, Any]:
    """(key, value) of a one-key object, (None, None) for anything else."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        return key, inner
    return None, None


def _is_variant(key: str) -> bool:
    return key[:1].isupper()
