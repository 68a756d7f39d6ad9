"""Declarative feature specs: YAML families -> named, causal expressions with a warm-up.

A family config expands into one ``FeatureDef`` per parameter value. Column names are derived
from family and parameters (``rolling_std_logret_1_20``), never typed by hand, and each def
carries its warm-up: the number of earlier rows it needs before its first valid value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

from pipeline.features import library as lib

Source = Literal["close", "open", "high", "low", "volume", "logret_1", "ret_1"]
Window = Field(ge=1, le=2520)


class _Family(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReturnFamily(_Family):
    windows: tuple[int, ...] = Field(min_length=1)


class LagFamily(_Family):
    of: Source = "logret_1"
    lags: tuple[int, ...] = Field(min_length=1)


class RollingFamily(_Family):
    of: Source = "logret_1"
    windows: tuple[int, ...] = Field(min_length=1)


class HighLowRange(_Family):
    enabled: bool = True


class FeaturesConfig(_Family):
    """The feature families a model computes. Unknown families are rejected by name."""

    log_return: ReturnFamily | None = ReturnFamily(windows=(1, 5, 20))
    simple_return: ReturnFamily | None = None
    lag: LagFamily | None = LagFamily(lags=(1, 2, 3, 4, 5))
    rolling_mean: RollingFamily | None = RollingFamily(windows=(5, 20))
    rolling_std: RollingFamily | None = RollingFamily(windows=(5, 20))
    rolling_zscore: RollingFamily | None = RollingFamily(of="volume", windows=(20,))
    hl_range: HighLowRange | None = HighLowRange()


@dataclass(frozen=True)
class FeatureDef:
    """One output column: its derived name, its expression and its warm-up in rows."""

    name: str
    expr: pl.Expr
    warmup: int


def _source(name: Source) -> tuple[pl.Expr, int]:
    if name == "logret_1":
        return lib.log_return(pl.col("close"), window=1), 1
    if name == "ret_1":
        return lib.simple_return(pl.col("close"), window=1), 1
    return pl.col(name), 0


def _positive(values: tuple[int, ...], key: str) -> None:
    bad = [v for v in values if v < 1]
    if bad:
        raise ValueError(f"{key}: windows and lags must be >= 1 (causal), got {bad}")


def _rolling(family: str, fn: Callable[..., pl.Expr], cfg: RollingFamily) -> list[FeatureDef]:
    _positive(cfg.windows, family)
    base, base_warmup = _source(cfg.of)
    return [
        FeatureDef(f"{family}_{cfg.of}_{w}", fn(base, window=w), base_warmup + w - 1)
        for w in cfg.windows
    ]


def build_feature_defs(cfg: FeaturesConfig) -> list[FeatureDef]:
    """Expand the declared families into feature defs, in a stable order."""
    defs: list[FeatureDef] = []
    close = pl.col("close")
    for attr, fn, prefix in (
        ("log_return", lib.log_return, "logret"),
        ("simple_return", lib.simple_return, "ret"),
    ):
        fam: ReturnFamily | None = getattr(cfg, attr)
        if fam is not None:
            _positive(fam.windows, attr)
            defs += [FeatureDef(f"{prefix}_{w}", fn(close, window=w), w) for w in fam.windows]
    if cfg.lag is not None:
        _positive(cfg.lag.lags, "lag")
        base, base_warmup = _source(cfg.lag.of)
        defs += [
            FeatureDef(f"lag_{cfg.lag.of}_{k}", lib.lag(base, periods=k), base_warmup + k)
            for k in cfg.lag.lags
        ]
    for family, rfn in (
        ("rolling_mean", lib.rolling_mean),
        ("rolling_std", lib.rolling_std),
        ("rolling_zscore", lib.rolling_zscore),
    ):
        rfam: RollingFamily | None = getattr(cfg, family)
        if rfam is not None:
            defs += _rolling(family, rfn, rfam)
    if cfg.hl_range is not None and cfg.hl_range.enabled:
        defs.append(
            FeatureDef("hl_range", lib.high_low_range(pl.col("high"), pl.col("low"), close), 0)
        )
    names = [d.name for d in defs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate feature names: {sorted(duplicates)}")
    return defs


def total_warmup(defs: list[FeatureDef]) -> int:
    """Rows of history the whole set needs before every feature is defined."""
    return max((d.warmup for d in defs), default=0)
