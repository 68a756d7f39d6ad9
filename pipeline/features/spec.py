"""Declarative feature specs: YAML families -> named, causal expressions with a warm-up.

Each family is a small frozen model whose ``defs()`` expands it into one ``FeatureDef`` per
parameter value. Column names are derived from family and parameters
(``rolling_std_logret_1_20``), never typed by hand, and each def carries its warm-up: the rows
of history it needs before its first valid value (for recursive smoothers, before the seed's
weight is below ``RECURSIVE_TOLERANCE``).

Close-only data (an adjusted-close panel: no open, high, low or volume) cannot feed the families
that read those columns: NATR (true range needs high and low), stochastic %K/%D (high and low),
OBV ratio (volume), volume ratio, the high-low range and any family with ``of: open/high/low/
volume``. They are not approximated from the close (a "range" of closes is another feature
under the same name): ``missing_inputs`` names them, and training leaves them out under
``selection.features: __AUTO__`` and refuses them when named explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from pipeline.features import library as lib
from pipeline.features.guard import assert_causal
from pipeline.features.stages import Stage, with_plans

Source = Literal["close", "open", "high", "low", "volume", "logret_1", "ret_1"]
Window = Annotated[StrictInt, Field(ge=1, le=2520)]
Windows = Annotated[tuple[Window, ...], Field(min_length=1)]
C, H, L, V = pl.col("close"), pl.col("high"), pl.col("low"), pl.col("volume")
BENCH_CLOSE = "bench_close"
BAR_INPUTS = ("open", "high", "low", "close", "volume")  # the price columns features read
OPTIONAL_INPUTS = ("open", "high", "low", "volume")  # those close-only data lacks
FeatureDtype = Literal["float64", "float32"]


@dataclass(frozen=True)
class FeatureDef:
    """One output column: derived name, expression, warm-up rows and partition.

    ``partition`` is ``"ticker"`` for time-series features (windows never cross tickers) or
    ``"date"`` for cross-sectional ones, computed after every per-ticker feature exists.
    """

    name: str
    expr: pl.Expr
    warmup: int
    partition: Literal["ticker", "date"] = "ticker"
    dtype: FeatureDtype = "float64"
    family: str = ""  # the FeaturesConfig key it was declared under (set by build_feature_defs)
    # The family's declared stages (pipeline/features/stages.py), which the engine computes
    # once and shares; None: the engine runs ``expr`` per ticker as it is.
    plan: Stage | None = field(default=None, compare=False, repr=False)


def source(name: Source) -> tuple[pl.Expr, int]:
    """A base series and its own warm-up."""
    if name == "logret_1":
        return lib.log_return(C, window=1), 1
    if name == "ret_1":
        return lib.simple_return(C, window=1), 1
    return pl.col(name), 0


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x).replace(".", "p")


class _Family(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Returns(_Family):
    windows: Windows

    def defs(self, kind: str) -> list[FeatureDef]:
        fn, prefix = (
            (lib.log_return, "logret") if kind == "log_return" else (lib.simple_return, "ret")
        )
        return [FeatureDef(f"{prefix}_{w}", fn(C, window=w), w) for w in self.windows]


class Lags(_Family):
    of: Source = "logret_1"
    lags: Windows

    def defs(self, kind: str) -> list[FeatureDef]:
        base, b = source(self.of)
        return [
            FeatureDef(f"lag_{self.of}_{k}", lib.lag(base, periods=k), b + k) for k in self.lags
        ]


_ROLLING = {
    "rolling_mean": lib.rolling_mean,
    "rolling_std": lib.rolling_std,
    "rolling_min": lib.rolling_min,
    "rolling_max": lib.rolling_max,
    "rolling_sum": lib.rolling_sum,
    "rolling_skew": lib.rolling_skew,
    "rolling_zscore": lib.rolling_zscore,
    "dist_max": lib.distance_from_max,
    "dist_min": lib.distance_from_min,
}


class Rolling(_Family):
    of: Source = "logret_1"
    windows: Windows

    def defs(self, kind: str) -> list[FeatureDef]:
        base, b = source(self.of)
        return [
            FeatureDef(f"{kind}_{self.of}_{w}", _ROLLING[kind](base, window=w), b + w - 1)
            for w in self.windows
        ]


class Ewm(_Family):
    of: Source = "logret_1"
    spans: Windows

    def defs(self, kind: str) -> list[FeatureDef]:
        base, b = source(self.of)
        fn = lib.ewm_mean if kind == "ewm_mean" else lib.ewm_vol
        return [
            FeatureDef(
                f"{kind}_{self.of}_{s}",
                fn(base, span=s),
                b + lib.convergence_rows(lib.span_alpha(s)) - 1,
            )
            for s in self.spans
        ]


class Windowed(_Family):
    """Indicators on OHLCV with one window parameter (RSI, NATR, OBV ratio, volume ratio).

    RSI reads the close only. NATR needs high and low, OBV ratio and volume ratio need volume:
    on close-only data they are left out (see the module docstring), never approximated.
    """

    windows: Windows

    def defs(self, kind: str) -> list[FeatureDef]:
        return [FeatureDef(f"{kind}_{w}", *self._one(kind, w)) for w in self.windows]

    @staticmethod
    def _one(kind: str, w: int) -> tuple[pl.Expr, int]:
        conv = lib.convergence_rows(1.0 / w)
        if kind == "rsi":  # the first diff is at row 1, Wilder needs `conv` diffs after it
            return lib.rsi(C, window=w), conv
        if kind == "natr":  # the true range exists from row 0
            return lib.natr(H, L, C, window=w), conv - 1
        if kind == "obv_ratio":
            return lib.obv_ratio(C, V, window=w), w
        return lib.volume_ratio(V, window=w), w - 1


class Macd(_Family):
    fast: Window = 12
    slow: Window = 26
    signal: Window = 9

    def defs(self, kind: str) -> list[FeatureDef]:
        if self.fast >= self.slow:
            raise ValueError(f"macd: fast ({self.fast}) must be < slow ({self.slow})")
        f, s, g = self.fast, self.slow, self.signal
        line = lib.macd(C, fast=f, slow=s)
        sig = lib.macd_signal(C, fast=f, slow=s, signal=g)
        w_line = lib.convergence_rows(lib.span_alpha(s)) - 1
        w_sig = w_line + lib.convergence_rows(lib.span_alpha(g)) - 1
        return [
            FeatureDef(f"macd_line_{f}_{s}", line, w_line),
            FeatureDef(f"macd_signal_{f}_{s}_{g}", sig, w_sig),
            FeatureDef(f"macd_hist_{f}_{s}_{g}", line - sig, w_sig),
        ]


class Bollinger(_Family):
    windows: Windows = (20,)
    k: float = Field(2.0, gt=0)

    def defs(self, kind: str) -> list[FeatureDef]:
        k = _fmt(self.k)
        return [
            d
            for w in self.windows
            for d in (
                FeatureDef(f"bb_pctb_{w}_{k}", lib.bollinger_pctb(C, window=w, k=self.k), w - 1),
                FeatureDef(f"bb_width_{w}_{k}", lib.bollinger_width(C, window=w, k=self.k), w - 1),
            )
        ]


class Stochastic(_Family):
    """Stochastic %K/%D: needs high and low, so it is left out on close-only data."""

    windows: Windows = (14,)
    smooth: Window = 3

    def defs(self, kind: str) -> list[FeatureDef]:
        out = []
        for w in self.windows:
            k = lib.stochastic_k(H, L, C, window=w)
            out += [
                FeatureDef(f"stoch_k_{w}", k, w - 1),
                FeatureDef(
                    f"stoch_d_{w}_{self.smooth}", k.rolling_mean(self.smooth), w + self.smooth - 2
                ),
            ]
        return out


class HighLowRange(_Family):
    """(high - low) / close: needs high and low, so it is left out on close-only data."""

    enabled: bool = True

    def defs(self, kind: str) -> list[FeatureDef]:
        return [FeatureDef("hl_range", lib.high_low_range(H, L, C), 0)] if self.enabled else []


class Calendar(_Family):
    fields: tuple[Literal["day_of_week", "month", "days_to_month_end"], ...] = (
        "day_of_week",
        "month",
        "days_to_month_end",
    )

    def defs(self, kind: str) -> list[FeatureDef]:
        fns = {
            "day_of_week": lib.day_of_week,
            "month": lib.month,
            "days_to_month_end": lib.days_to_month_end,
        }
        return [FeatureDef(f"cal_{f}", fns[f](pl.col("date")), 0) for f in self.fields]


class Market(_Family):
    """Features against a benchmark's close, joined by date in DuckDB (column bench_close)."""

    benchmark: str = "SPY"
    windows: Windows = (60,)

    def defs(self, kind: str) -> list[FeatureDef]:
        r = lib.log_return(C, window=1)
        rb = lib.log_return(pl.col(BENCH_CLOSE), window=1)
        tag = self.benchmark.lower()
        out = []
        for w in self.windows:
            out += [
                FeatureDef(f"beta_{tag}_{w}", lib.rolling_beta(r, rb, window=w), w),
                FeatureDef(f"corr_{tag}_{w}", lib.rolling_corr(r, rb, window=w), w),
                FeatureDef(
                    f"excess_logret_{tag}_{w}",
                    lib.log_return(C, window=w) - lib.log_return(pl.col(BENCH_CLOSE), window=w),
                    w,
                ),
            ]
        return out


class CrossSection(_Family):
    """Per-date rank and z-score of per-ticker features across the panel."""

    of: Annotated[tuple[str, ...], Field(min_length=1)]
    stats: tuple[Literal["rank", "zscore"], ...] = ("rank", "zscore")


class FeaturesConfig(_Family):
    """The feature families a model computes. Unknown families are rejected by name.

    ``dtype: float32`` stores every feature as Float32 (computed in Float64, then rounded
    once): half the memory of the feature frame (2.5M rows x 40 features: 381 MiB instead of
    763) at ~6e-8 relative error, which LightGBM's float32 histogram bins never see. Off by
    default: the oracle tests hold Float64 features to 1e-12.
    """

    dtype: FeatureDtype = "float64"

    log_return: Returns | None = Returns(windows=(1, 5, 20))
    simple_return: Returns | None = None
    lag: Lags | None = Lags(lags=(1, 2, 3, 4, 5))
    rolling_mean: Rolling | None = Rolling(windows=(5, 20))
    rolling_std: Rolling | None = Rolling(windows=(5, 20))
    rolling_min: Rolling | None = None
    rolling_max: Rolling | None = None
    rolling_sum: Rolling | None = None
    rolling_skew: Rolling | None = None
    rolling_zscore: Rolling | None = Rolling(of="volume", windows=(20,))
    ewm_mean: Ewm | None = None
    ewm_vol: Ewm | None = None
    rsi: Windowed | None = None
    macd: Macd | None = None
    bollinger: Bollinger | None = None
    natr: Windowed | None = None
    stochastic: Stochastic | None = None
    obv_ratio: Windowed | None = None
    dist_max: Rolling | None = None
    dist_min: Rolling | None = None
    volume_ratio: Windowed | None = None
    hl_range: HighLowRange | None = HighLowRange()
    calendar: Calendar | None = None
    market: Market | None = None
    cross_section: CrossSection | None = None

    @model_validator(mode="before")
    @classmethod
    def _switched_off(cls, data: Any) -> Any:
        """``family: {enabled: false}`` switches any family off, like ``family: null``.

        Read before the family's own fields, so a family whose parameters are required
        (``natr: {enabled: false}``) can be switched off in one line, and an overlay can switch
        off a family that the base declares with parameters (deep merge keeps them; this
        drops them)."""
        if not isinstance(data, Mapping):
            return data
        return {
            key: None if _disabled(value) and key not in _OWN_SWITCH else value
            for key, value in data.items()
        }

    def families(self) -> list[tuple[str, Any]]:
        """(config key, family) of every family switched on, in declaration order."""
        kinds = (k for k in type(self).model_fields if k != "dtype")
        on = ((k, getattr(self, k)) for k in kinds)
        return [(k, f) for k, f in on if f is not None and getattr(f, "enabled", True)]

    @property
    def benchmark(self) -> str | None:
        """Ticker whose close the market family needs, if any."""
        return self.market.benchmark if self.market is not None else None


# hl_range has kept its own `enabled` field since before every family had the switch: its
# registered specs say `hl_range: {enabled: ...}`, and they must keep loading unchanged.
_OWN_SWITCH = frozenset({"hl_range"})


def _disabled(value: object) -> bool:
    return isinstance(value, Mapping) and value.get("enabled") is False


def declared_families(data: object) -> object:
    """A ``features`` mapping read from a config file, as exactly the families it names.

    FeaturesConfig's defaults serve code that builds one by hand; in a config file, naming
    only ``rsi`` means rsi only, and naming none (``features: {}``) is an error rather than
    14 hidden default features. A FeaturesConfig instance passes through unchanged.
    """
    if not isinstance(data, Mapping):
        return data
    if all(value is None or _disabled(value) for key, value in data.items() if key != "dtype"):
        raise ValueError(
            "no features: declare at least one feature family, e.g. "
            "`log_return: {windows: [1, 5, 20]}` (see conf/base/model.yaml)"
        )
    families = [k for k in FeaturesConfig.model_fields if k != "dtype"]
    return {**dict.fromkeys(families), **data}


def build_feature_defs(cfg: FeaturesConfig) -> list[FeatureDef]:
    """Expand the declared families into feature defs, in a stable order.

    Every per-ticker expression passes the static causality guard.
    """
    defs: list[FeatureDef] = []
    for kind, family in cfg.families():
        if not isinstance(family, CrossSection):
            defs += with_plans(kind, family, [replace(d, family=kind) for d in family.defs(kind)])
    for d in defs:
        assert_causal(d.expr, d.name)
    if cfg.cross_section is not None:
        by_name = {d.name: d for d in defs}
        unknown = [n for n in cfg.cross_section.of if n not in by_name]
        if unknown:
            raise ValueError(f"cross_section.of: unknown feature(s) {unknown}")
        fns = {"rank": lib.cross_sectional_rank, "zscore": lib.cross_sectional_zscore}
        defs += [
            FeatureDef(
                f"cs_{stat}_{n}",
                fns[stat](pl.col(n)),
                by_name[n].warmup,
                "date",
                family="cross_section",
            )
            for n in cfg.cross_section.of
            for stat in cfg.cross_section.stats
        ]
    names = [d.name for d in defs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate feature names: {sorted(duplicates)}")
    return [replace(d, dtype=cfg.dtype) for d in defs]


def total_warmup(defs: list[FeatureDef]) -> int:
    """Rows of history the whole set needs before every feature is defined."""
    return max((d.warmup for d in defs), default=0)


def def_inputs(defs: list[FeatureDef]) -> dict[str, frozenset[str]]:
    """The price columns (``BAR_INPUTS``) each def reads, by name; a cross-sectional def reads
    what the features it ranks read. Read from the expressions themselves, so a new family
    needs no declaration to be left out on data that lacks its columns."""
    found: dict[str, frozenset[str]] = {}
    for d in defs:  # per-ticker defs come first, so a cross-sectional one finds its inputs
        roots = set(d.expr.meta.root_names())
        nested = (found.get(r, frozenset()) for r in roots)
        found[d.name] = frozenset(roots & set(BAR_INPUTS)).union(*nested)
    return found


def missing_inputs(defs: list[FeatureDef], available: tuple[str, ...]) -> dict[str, list[str]]:
    """Feature name -> the price columns it reads that ``available`` lacks (only features
    that lack any)."""
    lacking = {name: sorted(cols - set(available)) for name, cols in def_inputs(defs).items()}
    return {name: cols for name, cols in lacking.items() if cols}


def left_out_families(defs: list[FeatureDef], available: tuple[str, ...]) -> dict[str, list[str]]:
    """Family -> the price columns it needs that ``available`` lacks: the families that
    close-only (or otherwise partial) data cannot feed, in declaration order."""
    by_name = {d.name: d for d in defs}
    out: dict[str, set[str]] = {}
    for name, cols in missing_inputs(defs, available).items():
        out.setdefault(by_name[name].family or name, set()).update(cols)
    return {family: sorted(cols) for family, cols in out.items()}


def available_inputs(frame: pl.DataFrame, *, every_row: bool = True) -> tuple[str, ...]:
    """The price columns of ``frame`` that features may read: present and, with
    ``every_row``, null on no row (a panel mixing full and close-only tickers lacks the
    column); otherwise null on some row at most (absent means null throughout)."""
    present = [c for c in BAR_INPUTS if c in frame.columns]
    if not present or not frame.height:
        return tuple(present)
    nulls = frame.select(pl.col(present).null_count()).row(0)
    limit = 0 if every_row else frame.height - 1
    return tuple(c for c, n in zip(present, nulls, strict=True) if n <= limit)
