"""The training frame: features and target computed once per data version, then reused."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipeline.domain import Fold
from pipeline.errors import DataError
from pipeline.evaluation.report import OutOfSample
from pipeline.features.engine import TARGET, TICKER, add_features, add_target, collect
from pipeline.features.library import log_return
from pipeline.features.spec import FeatureDef, total_warmup


@dataclass(frozen=True)
class TrainingSet:
    """Rows usable for training: past warm-up, with a known target."""

    X: np.ndarray
    y: np.ndarray
    dates: pl.Series
    tickers: pl.Series
    columns: tuple[str, ...]
    raw: pl.DataFrame  # the price rows the features came from, for input examples
    last_return: np.ndarray  # log return over the past `horizon` days: the momentum baseline
    warmup: int = 0  # rows of each ticker's history before its first usable row

    def masks(self, fold: Fold) -> tuple[np.ndarray, np.ndarray]:
        """Boolean row masks for a fold's train and test windows (inclusive dates)."""
        d = self.dates
        train = ((d >= fold.train_start) & (d <= fold.train_end)).to_numpy()
        test = ((d >= fold.test_start) & (d <= fold.test_end)).to_numpy()
        return train, test

    def out_of_sample(self, folds: list[Fold], predictions: list[np.ndarray]) -> OutOfSample:
        """Concatenate each fold's test rows with that fold's predictions."""
        parts = []
        for fold, pred in zip(folds, predictions, strict=True):
            _, test = self.masks(fold)
            parts.append(
                (
                    np.full(int(test.sum()), fold.fold),
                    self.dates.to_numpy()[test],
                    self.tickers.to_numpy()[test],
                    self.y[test],
                    pred,
                    self.last_return[test],
                )
            )
        return OutOfSample(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))


def build_training_set(
    prices: pl.LazyFrame,
    defs: list[FeatureDef],
    columns: tuple[str, ...],
    horizon: int,
    featured: pl.DataFrame | None = None,
) -> TrainingSet:
    """Compute every feature and the target once; drop warm-up rows and unlabelled tail rows.

    ``featured`` is ``prices`` with every feature of ``defs`` already computed: several
    horizons share one feature computation and differ only in their target.
    """
    warmup = total_warmup([d for d in defs if d.name in columns])
    lf = (
        feature_frame(prices, defs, horizon)
        if featured is None
        else add_target(featured.lazy(), horizon)
    )
    frame = collect(
        lf.with_columns(
            pl.int_range(pl.len()).over(TICKER).alias("__pos__"),
            log_return(pl.col("close"), window=horizon).over(TICKER).alias("__last__"),
        ).filter((pl.col("__pos__") >= warmup) & pl.col(TARGET).is_not_null())
    )
    if frame.height == 0:
        raise DataError(
            f"no trainable rows: history is shorter than the feature warm-up ({warmup} rows) "
            f"plus the horizon ({horizon})"
        )
    # Raw model inputs (prices, plus bench_close when used) for input examples and refits.
    raw = prices.sort(TICKER, "date").collect()
    return TrainingSet(
        X=frame.select(columns).to_numpy().astype(np.float64),
        y=frame.get_column(TARGET).to_numpy(),
        dates=frame.get_column("date"),
        tickers=frame.get_column(TICKER),
        columns=columns,
        raw=raw,
        last_return=frame.get_column("__last__").fill_null(0.0).to_numpy(),
        warmup=warmup,
    )


def feature_frame(prices: pl.LazyFrame, defs: list[FeatureDef], horizon: int) -> pl.LazyFrame:
    """Prices plus every feature and the target: exactly what the model sees."""
    return add_target(add_features(prices, defs), horizon)
