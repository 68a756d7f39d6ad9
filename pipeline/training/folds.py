"""The walk-forward fold layout of a job: the SQL view's manifest, fitted to the data if needed.

The manifest itself is computed in exactly one place, the DuckDB view ``sql/040_v_folds.sql``.
This module only chooses its parameters: the configured ones, or, when the user left
``n_folds`` and ``test_size`` unset and the default layout does not fit the history, the
largest smaller layout that does (shorter test windows first, then fewer folds). Explicit
settings are never changed; an adapted layout is logged and reported.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.domain import Fold, FoldSpec, PriceStore
from pipeline.errors import DataError
from pipeline.settings import FoldsConfig

log = logging.getLogger(__name__)

# Smaller layouts tried, in order, when the defaults do not fit: a year, three quarters, half a
# year and a quarter of test days; then four and three folds.
TEST_SIZES = (250, 189, 126, 63)
FOLD_COUNTS = (5, 4, 3)
Ranges = Mapping[str, tuple[dt.date, dt.date]]


@dataclass(frozen=True)
class FoldLayout:
    """The folds a job uses, the parameters that made them and, if adapted, why."""

    folds: list[Fold]
    spec: FoldSpec
    adapted: str | None = None

    @property
    def hash(self) -> str:
        return folds_hash(self.folds)


def folds_hash(folds: list[Fold]) -> str:
    """Fingerprint of the fold manifest: same hash, same train/test dates."""
    doc = [
        [
            f.fold,
            str(f.train_start),
            str(f.train_end),
            str(f.test_start),
            str(f.test_end),
            f.train_rows,
            f.test_rows,
        ]
        for f in folds
    ]
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def fold_spec(
    folds: FoldsConfig, horizon: int, purge: int | None = None, warmup: int = 0
) -> FoldSpec:
    """The typed layout bound into the SQL view (``purge`` overrides the configured one).

    The purge is never shorter than the horizon: an ``h``-day label reaches ``h`` days ahead,
    so a shorter gap would let training labels see the test window."""
    return FoldSpec(
        n_folds=folds.n_folds,
        test_size=folds.test_size,
        horizon=horizon,
        purge=max(folds.purge if purge is None else purge, horizon),
        scheme=folds.scheme,
        step=folds.step,
        embargo=folds.embargo,
        min_train_size=folds.min_train_size,
        max_train_size=folds.max_train_size,
        warmup=warmup,
    )


def _alternatives(cfg: FoldsConfig, horizon: int) -> list[FoldsConfig]:
    """Smaller layouts for the parameters the user did not set (none if both are set)."""
    explicit = cfg.model_fields_set
    sizes = [cfg.test_size]
    if not {"test_size", "step"} & explicit:
        sizes = [s for s in TEST_SIZES if horizon <= s <= cfg.test_size] or sizes
    counts = [cfg.n_folds]
    if "n_folds" not in explicit:
        counts = [n for n in FOLD_COUNTS if n <= cfg.n_folds] or counts
    layouts = [cfg.model_copy(update={"n_folds": n, "test_size": s}) for n in counts for s in sizes]
    return [c for c in layouts if (c.n_folds, c.test_size) != (cfg.n_folds, cfg.test_size)]


def resolve_folds(
    store: PriceStore,
    tickers: tuple[str, ...],
    ranges: Ranges | None,
    cfg: FoldsConfig,
    horizon: int,
    purge: int | None = None,
    warmup: int = 0,
) -> FoldLayout:
    """The configured folds, or the first smaller default layout that fits the history.

    ``warmup`` is the features' warm-up: rows and days are counted from each ticker's first
    usable row, and ``min_train_size`` is checked on those."""
    spec = fold_spec(cfg, horizon, purge, warmup)
    try:
        return FoldLayout(store.folds(tickers, spec, ranges), spec)
    except DataError as exc:
        first_error = exc
    alternatives = _alternatives(cfg, horizon)
    for alt in alternatives:
        spec = fold_spec(alt, horizon, purge, warmup)
        try:
            folds = store.folds(tickers, spec, ranges)
        except DataError:
            continue
        note = (
            f"the default fold layout ({cfg.n_folds} folds of {cfg.test_size} test days) does "
            f"not fit this history: using {alt.n_folds} folds of {alt.test_size} test days "
            "(set training.folds.n_folds and test_size to choose)"
        )
        log.warning("folds: %s", note)
        return FoldLayout(folds, spec, note)
    if not alternatives:
        raise first_error
    raise DataError(
        f"{first_error}; no smaller layout fits either (down to {alternatives[-1].n_folds} "
        f"folds of {alternatives[-1].test_size} test days): the history is too short"
    ) from first_error
