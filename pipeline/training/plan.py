"""Everything a training job needs, worked out before it writes anything.

The validated inputs are loaded into a scratch warehouse (an in-memory DuckDB in production),
the history checked against what the features and folds need, the training set built and the
fold layout chosen there. Only a plan that can train is handed on; the real warehouse, the
raw snapshots and the tracking store are written afterwards. `validate` runs the same plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from pipeline.data.inputs import Inputs, load_inputs, store_inputs
from pipeline.domain import Fold, PriceBatch, PriceSource, PriceStore
from pipeline.features.columns import feature_columns
from pipeline.features.engine import add_features, collect
from pipeline.features.spec import (
    OPTIONAL_INPUTS,
    FeatureDef,
    available_inputs,
    build_feature_defs,
    left_out_families,
    missing_inputs,
    total_warmup,
)
from pipeline.settings import AUTO, FoldsConfig, ModelConfig, StockpipeConfig
from pipeline.training.dataset import TrainingSet, build_training_set
from pipeline.training.folds import FoldLayout, resolve_folds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    """The inputs that will train (short tickers left out), their training set and folds."""

    inputs: Inputs
    data: TrainingSet
    layout: FoldLayout
    warmup: int
    need_rows: int
    skipped: dict[str, int]  # ticker -> rows it had, left out under short_history: skip
    horizon: int  # days ahead the target looks (model.target.horizon)
    # Feature family -> the price columns it needs that the data lacks (close-only input):
    # left out under selection.features: __AUTO__.
    left_out: dict[str, list[str]] = field(default_factory=dict)

    @property
    def folds(self) -> list[Fold]:
        return self.layout.folds

    def describe(self) -> list[str]:
        """Human lines: what would train, on which folds, and what was left out."""
        f = self.layout.folds
        lines = [
            f"trainable: {len(self.data.y)} training rows of {len(self.inputs.tickers)} "
            f"ticker(s), {len(self.data.columns)} features (warm-up {self.warmup} rows)",
            f"folds: {len(f)} of {self.layout.spec.test_size} test days, "
            f"{f[0].train_start}..{f[-1].test_end}, hash {self.layout.hash}",
        ]
        if self.layout.adapted:
            lines.append(f"note: {self.layout.adapted}")
        for ticker, rows in self.skipped.items():
            lines.append(f"skipped: {ticker} ({rows} rows, needs {self.need_rows})")
        if self.left_out:
            lines.append(f"left out: {_families_text(self.left_out)}")
        return lines


def _families_text(left_out: dict[str, list[str]]) -> str:
    """``natr (needs high, low), obv_ratio (needs volume)``."""
    return ", ".join(f"{f} (needs {', '.join(cols)})" for f, cols in left_out.items())


@dataclass(frozen=True)
class UsableFeatures:
    """The features the data can feed: every def they need, the selected columns, and the
    price columns (and families) the data lacks."""

    defs: list[FeatureDef]
    columns: tuple[str, ...]
    absent: tuple[str, ...]  # optional price columns the data lacks (dropped from history)
    left_out: dict[str, list[str]]


def usable_features(model: ModelConfig, batch: PriceBatch) -> UsableFeatures:
    """What ``model``'s features are on ``batch``: with every price column, all of them; on
    close-only data (or a panel where some ticker lacks a column) the families reading a
    missing column are left out under ``__AUTO__``, with ONE warning naming them, and refused
    by name in an explicit selection list (ConfigError, exit 2)."""
    available = available_inputs(batch.frame)
    defs = build_feature_defs(model.features)
    columns = feature_columns(model, available)  # refuses an explicit list naming one
    lacking = missing_inputs(defs, available)
    sel = model.selection
    candidates = [d for d in defs if d.name not in set(sel.exclude)]
    left_out = left_out_families(candidates, available) if sel.features == AUTO else {}
    if left_out:
        log.warning(
            "the data has no %s column(s): feature families left out: %s",
            "/".join(c for c in OPTIONAL_INPUTS if c not in available),
            _families_text(left_out),
        )
    absent = tuple(c for c in OPTIONAL_INPUTS if c not in available)
    return UsableFeatures([d for d in defs if d.name not in lacking], columns, absent, left_out)


def plan_training(
    model: ModelConfig,
    folds: FoldsConfig,
    short_history: Literal["error", "skip"],
    source: PriceSource,
    benchmark: PriceSource | None,
    workspace: PriceStore,
) -> TrainingPlan:
    """The plan of the primary horizon (see :func:`plan_horizons`)."""
    plans = plan_horizons(model, folds, short_history, source, benchmark, workspace)
    return plans[model.target.horizon]


def plan_horizons(
    model: ModelConfig,
    folds: FoldsConfig,
    short_history: Literal["error", "skip"],
    source: PriceSource,
    benchmark: PriceSource | None,
    workspace: PriceStore,
) -> dict[int, TrainingPlan]:
    """Load the inputs, check the history, build each horizon's training set and folds.

    Everything is computed in ``workspace``. Every horizon trains on the same tickers (those
    with history enough for the longest one), and with several horizons the features are
    computed once and shared. Each horizon's folds purge at least its own horizon. Raises
    DataError, naming the tickers and rows at fault, if the data cannot train (ConfigError or
    DataError if the inputs are bad).
    """
    inputs = load_inputs(model.features.benchmark, source, benchmark)
    usable = usable_features(model, inputs.batch)
    defs, columns = usable.defs, usable.columns
    warmup = total_warmup([d for d in defs if d.name in columns])
    horizons = model.target.horizons
    longest = max(horizons)
    need = warmup + longest + 1  # one labelled row past the warm-up
    why = f"to train (feature warm-up {warmup} + horizon {longest} + 1 labelled row)"
    kept, skipped = inputs.require_history(need, short_history, why)
    store_inputs(workspace, kept)
    # Columns the data lacks are not model inputs: the logged model's signature and its
    # feature step then ask for the close (and bench_close) only.
    history = kept.history(workspace).drop(usable.absent)
    featured = collect(add_features(history, defs)) if len(horizons) > 1 else None
    plans = {}
    for h in horizons:
        data = build_training_set(history, defs, columns, h, featured)
        layout = resolve_folds(
            workspace, kept.tickers, kept.batch.ranges, folds, h, warmup=data.warmup
        )
        plans[h] = TrainingPlan(kept, data, layout, warmup, need, skipped, h, usable.left_out)
    return plans


def unused_selection_k(cfg: StockpipeConfig) -> list[str]:
    """A note when ``selection.k`` decides nothing: it is the fixed k of the candidates that
    do not tune ``selector__k``, and every enabled candidate here tunes it."""
    if cfg.model.selection.selector != "kbest":
        return []
    enabled = [c for c in cfg.candidates.candidates if c.enabled]
    if any("selector__k" not in {**c.params, **c.space} for c in enabled):
        return []
    return [
        f"note: selection.k ({cfg.model.selection.k}) is unused: every enabled candidate "
        "tunes selector__k (model_candidates.yaml); it applies to candidates that do not"
    ]
