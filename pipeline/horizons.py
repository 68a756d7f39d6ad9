"""Which model each horizon's `backtest` or `monitor` looks at, and where its files go."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from pipeline.settings import StockpipeConfig


class HorizonJob(NamedTuple):
    cfg: StockpipeConfig  # narrowed to one horizon when several are configured
    output_dir: Path
    model_uri: str | None  # None: that config's champion


def per_horizon(cfg: StockpipeConfig, output_dir: Path, model_uri: str | None) -> list[HorizonJob]:
    """The model asked for, or every configured horizon's champion: one horizon writes to
    ``output_dir``, several to ``output_dir/h<h>/`` each."""
    if model_uri or len(cfg.horizons) == 1:
        return [HorizonJob(cfg, output_dir, model_uri)]
    return [HorizonJob(cfg.for_horizon(h), output_dir / f"h{h}", None) for h in cfg.horizons]
