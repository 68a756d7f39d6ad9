"""The training frame: features and target computed once per data version, then reused."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

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
    """Rows usable for training: past warm-up, with a known target.

    Rows are in (ticker, date) order, so a fold's rows of a panel are not one range: fits take
    ``X[mask]`` (a copy, C-ordered, as every fit has always seen it). ``X`` is column-major.
    """

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

    @cached_property
    def missing_rows(self) -> np.ndarray:
        """Rows holding a NaN feature: an imputer changes nothing on the other rows."""
        return np.asarray(np.isnan(self.X).any(axis=1))

    def holdout(self, fold: Fold, days: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
        """A fold's training window split for early stopping: (fit rows, validation rows).

        Validation is the window's last ``days`` trading days; the ``gap`` days before them are
        purged like a fold's (a label there would reach into validation); the rest fits.
        Never a test day: both come from the training window.
        """
        train, _ = self.masks(fold)
        dates = self.dates.to_numpy()
        calendar = np.unique(dates[train])
        if len(calendar) <= days + gap:
            raise ValueError(
                f"fold {fold.fold}: {len(calendar)} training days leave nothing to fit after "
                f"{days} validation days and a {gap}-day purge (validation_days)"
            )
        fit = train & (dates <= calendar[-(days + gap + 1)])
        return fit, train & (dates >= calendar[-days])

    def out_of_sample(self, folds: list[Fold], predictions: list[np.ndarray]) -> OutOfSample:
        """Concatenate each fold's test rows with that fold's predictions."""
        parts = []
        for fold, pred in zip(folds, predictions, strict=True):
            _, test = self.masks(fold)
            rows = pl.Series(test)  # only the test rows are converted (tickers are strings)
            parts.append(
                (
                    np.full(int(test.sum()), fold.fold),
                    self.dates.filter(rows).to_numpy(),
                    self.tickers.filter(rows).to_numpy(),
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
        X=feature_matrix(frame, columns),
        y=frame.get_column(TARGET).to_numpy(),
        dates=frame.get_column("date"),
        tickers=frame.get_column(TICKER),
        columns=columns,
        raw=raw,
        last_return=frame.get_column("__last__").fill_null(0.0).to_numpy(),
        warmup=warmup,
    )


def feature_matrix(frame: pl.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """``frame``'s ``columns`` as a column-major float64 matrix, moved out of ``frame``.

    Each column is dropped from ``frame`` once copied, so the frame and the matrix never both
    hold every feature (``select().to_numpy().astype()`` held three copies at its peak). The
    values are those bits: nulls become NaN, Float32 widens exactly.
    """
    X = np.empty((frame.height, len(columns)), dtype=np.float64, order="F")
    for j, name in enumerate(columns):
        X[:, j] = frame.drop_in_place(name).to_numpy()
    return X


def feature_frame(prices: pl.LazyFrame, defs: list[FeatureDef], horizon: int) -> pl.LazyFrame:
    """Prices plus every feature and the target: exactly what the model sees."""
    return add_target(add_features(prices, defs), horizon)
