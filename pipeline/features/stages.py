"""Named stages: the intermediates a feature family shares, declared instead of discovered.

A ``Stage`` is a formula (a function of Polars expressions, usually from ``library``) applied
to inputs that are raw columns or other stages. It gives two expressions from the same call:

* ``full()``: the formula over the stages' own formulas, i.e. the feature's expression as the
  family writes it (``rolling_std(log_return(close, 1), 20)``);
* ``body()``: the same formula over the stages' temporary columns (``rolling_std(col, 20)``).

Calling one function twice means the two cannot drift apart, and the engine still checks that
``full()`` equals the def's expression (``Expr.meta.eq``, public API) before it uses a plan.

``path`` says how the engine may compute a stage or a def's body, bit for bit what
``.over(ticker)`` gives: ``point`` (row t reads row t of per-ticker-exact columns only: no
partitioning), ``masked`` (literal shifts and rolling min/max only, on the whole sorted column,
nulled for each ticker's first ``mask`` rows, where ``mask`` is at least the rows read back and
at most the first row ``.over`` can fill) or ``ticker`` (per ticker: anything with a running
state, EWMs and rolling sums). The family declares it; the oracle tests hold every family to
``.over(ticker)``.

``PLANS`` maps a family's config key to its declarations, by feature name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Union

import polars as pl

from pipeline.features import library as lib

if TYPE_CHECKING:
    from pipeline.features.spec import FeatureDef

Path = Literal["point", "masked", "ticker"]
Input = Union[pl.Expr, "Stage"]
PREFIX = "__stage_"
C, H, L, V = pl.col("close"), pl.col("high"), pl.col("low"), pl.col("volume")
B = pl.col("bench_close")


@dataclass(frozen=True, eq=False)
class Stage:
    """A formula over raw columns and other stages, and how the engine may compute it."""

    name: str
    fn: Callable[..., pl.Expr]
    inputs: tuple[Input, ...]
    path: Path = "ticker"
    mask: int = 0

    @property
    def column(self) -> str:
        """The temporary column the engine stores this stage in."""
        return PREFIX + self.name

    def full(self) -> pl.Expr:
        """The formula over the input stages' own formulas: what ``.over`` would compute."""
        return self.fn(*(i.full() if isinstance(i, Stage) else i for i in self.inputs))

    def body(self) -> pl.Expr:
        """The formula over the input stages' columns."""
        return self.fn(*(pl.col(i.column) if isinstance(i, Stage) else i for i in self.inputs))

    def stages(self) -> list[Stage]:
        """Every stage this one reads, directly or not, inputs before their readers."""
        out: list[Stage] = []
        for i in self.inputs:
            if isinstance(i, Stage):
                out += [*i.stages(), i]
        return out


def _same(x: pl.Expr) -> pl.Expr:
    return x


def shared(stage: Stage, path: Path = "point") -> Stage:
    """A def that is a shared stage itself: it reads the stage's column as it is."""
    return Stage(stage.name, _same, (stage,), path)


# --- base series and the kernels several families read --------------------------------------

LOGRET_1 = Stage("logret_1", partial(lib.log_return, window=1), (C,), "masked", 1)
RET_1 = Stage("ret_1", partial(lib.simple_return, window=1), (C,), "masked", 1)
BENCH_LOGRET_1 = Stage("bench_logret_1", partial(lib.log_return, window=1), (B,), "masked", 1)


def source(of: str) -> tuple[Input, int]:
    """The family's base series (a shared stage or a raw column) and its own warm-up."""
    if of == "logret_1":
        return LOGRET_1, 1
    if of == "ret_1":
        return RET_1, 1
    return pl.col(of), 0


def _rolling_mean(of: str, w: int) -> Stage:
    return Stage(f"rolling_mean_{of}_{w}", partial(lib.rolling_mean, window=w), (source(of)[0],))


def _rolling_std(of: str, w: int) -> Stage:
    return Stage(f"rolling_std_{of}_{w}", partial(lib.rolling_std, window=w), (source(of)[0],))


def _ema(of: str, span: int) -> Stage:
    return Stage(f"ema_{of}_{span}", partial(lib.ewm_mean, span=span), (source(of)[0],))


# --- each family's defs as stages, in the order of the family's ``defs()`` ------------------
# The engine only uses a plan whose full() equals the def's expression, so a declaration
# that falls behind a family's formula costs speed (.over), never a wrong value.


def _returns(f: Any, kind: str) -> list[Stage]:
    fn, first = (lib.log_return, LOGRET_1) if kind == "log_return" else (lib.simple_return, RET_1)
    return [
        shared(first) if w == 1 else Stage(kind, partial(fn, window=w), (C,), "masked", w)
        for w in f.windows
    ]


def _lags(f: Any, kind: str) -> list[Stage]:
    base, b = source(f.of)
    return [Stage(kind, partial(lib.lag, periods=k), (base,), "masked", b + k) for k in f.lags]


_MASKED_ROLLING = {
    "rolling_min": lib.rolling_min,
    "rolling_max": lib.rolling_max,
    "dist_max": lib.distance_from_max,
    "dist_min": lib.distance_from_min,
}
_TICKER_ROLLING = {
    "rolling_sum": lib.rolling_sum,
    "rolling_skew": lib.rolling_skew,
}


def _rolling_one(of: str, kind: str, w: int) -> Stage:
    base, b = source(of)
    if kind in _MASKED_ROLLING:  # min/max pick a value: exact on the whole column
        return Stage(kind, partial(_MASKED_ROLLING[kind], window=w), (base,), "masked", b + w - 1)
    if kind == "rolling_mean":
        return shared(_rolling_mean(of, w))
    if kind == "rolling_std":
        return shared(_rolling_std(of, w))
    if kind == "rolling_zscore":
        mean, std = _rolling_mean(of, w), _rolling_std(of, w)
        return Stage(kind, lib.zscore_from, (base, mean, std), "point")
    return Stage(kind, partial(_TICKER_ROLLING[kind], window=w), (base,))


def _rolling(f: Any, kind: str) -> list[Stage]:
    return [_rolling_one(f.of, kind, w) for w in f.windows]


def _ewm(f: Any, kind: str) -> list[Stage]:
    base, _ = source(f.of)
    if kind == "ewm_mean":
        return [shared(_ema(f.of, s)) for s in f.spans]
    return [Stage(kind, partial(lib.ewm_vol, span=s), (base,)) for s in f.spans]


def _diff_1(x: pl.Expr) -> pl.Expr:
    return x.diff(1)


CLOSE_DIFF_1 = Stage("close_diff_1", _diff_1, (C,), "masked", 1)
OBV_SIGNED = Stage("obv_signed", lib.obv_signed, (C, V), "masked", 1)


def _windowed_one(kind: str, w: int) -> Stage:
    if kind == "rsi":
        return Stage(kind, partial(lib.rsi_from_delta, window=w), (CLOSE_DIFF_1,))
    if kind == "natr":  # the true range's first row reads no previous close: per ticker
        return Stage(kind, partial(lib.natr, window=w), (H, L, C))
    if kind == "obv_ratio":
        return Stage(kind, partial(lib.obv_ratio_from, window=w), (OBV_SIGNED, V))
    return Stage(kind, lib.ratio_to, (V, _rolling_mean("volume", w)), "point")


def _windowed(f: Any, kind: str) -> list[Stage]:
    return [_windowed_one(kind, w) for w in f.windows]


def _macd(f: Any, kind: str) -> list[Stage]:
    line = Stage(
        f"macd_line_{f.fast}_{f.slow}",
        lib.macd_from,
        (_ema("close", f.fast), _ema("close", f.slow)),
        "point",
    )
    signal = Stage(f"{line.name}_{f.signal}", partial(lib.ewm_mean, span=f.signal), (line,))
    return [shared(line), shared(signal), Stage(kind, _minus, (line, signal), "point")]


def _minus(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    return a - b


def _bollinger(f: Any, kind: str) -> list[Stage]:
    out = []
    for w in f.windows:
        mid = _rolling_mean("close", w)
        sd = Stage(f"band_std_close_{w}", partial(lib.band_std, window=w), (C,))
        out += [
            Stage(kind, partial(lib.pctb_from, k=f.k), (C, mid, sd), "point"),
            Stage(kind, partial(lib.width_from, k=f.k), (mid, sd), "point"),
        ]
    return out


def _stochastic(f: Any, kind: str) -> list[Stage]:
    out = []
    for w in f.windows:
        k = Stage(f"stoch_k_{w}", partial(lib.stochastic_k, window=w), (H, L, C), "masked", w - 1)
        out += [shared(k), Stage(kind, partial(lib.rolling_mean, window=f.smooth), (k,))]
    return out


def _pointwise(f: Any, kind: str) -> list[Stage]:
    """Families whose every def reads row t only (hl_range, calendar): no stage, no mask."""
    return [Stage(kind, partial(_same, d.expr), (), "point") for d in f.defs(kind)]


def _market(f: Any, kind: str) -> list[Stage]:
    r, rb = LOGRET_1, BENCH_LOGRET_1
    out = []
    for w in f.windows:
        out += [
            Stage(kind, partial(lib.rolling_beta, window=w), (r, rb)),
            Stage(kind, partial(lib.rolling_corr, window=w), (r, rb)),
            Stage(kind, partial(lib.excess_log_return, window=w), (C, B), "masked", w),
        ]
    return out


PLANS: Mapping[str, Callable[[Any, str], list[Stage]]] = {
    "log_return": _returns,
    "simple_return": _returns,
    "lag": _lags,
    **dict.fromkeys(
        ("rolling_mean", "rolling_std", "rolling_min", "rolling_max", "rolling_sum"), _rolling
    ),
    **dict.fromkeys(("rolling_skew", "rolling_zscore", "dist_max", "dist_min"), _rolling),
    "ewm_mean": _ewm,
    "ewm_vol": _ewm,
    **dict.fromkeys(("rsi", "natr", "obv_ratio", "volume_ratio"), _windowed),
    "macd": _macd,
    "bollinger": _bollinger,
    "stochastic": _stochastic,
    "hl_range": _pointwise,
    "calendar": _pointwise,
    "market": _market,
}


def with_plans(kind: str, family: Any, defs: list[FeatureDef]) -> list[FeatureDef]:
    """The family's defs, each with its declared stages (none if the family declares none)."""
    declare = PLANS.get(kind)
    plans = declare(family, kind) if declare is not None else []
    if len(plans) != len(defs):
        return defs
    return [replace(d, plan=p) for d, p in zip(defs, plans, strict=True)]
