"""Issue 26 goals 2 and 6: no step of train holds two full copies of the feature matrix.

numpy reports its buffers to tracemalloc, so the peak of what Python allocated during a step
is measured exactly (Polars' and LightGBM's native memory is not counted: that is the point,
these tests are about our copies).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.pipeline import Pipeline
from support import sample_prices

from pipeline.domain import Fold
from pipeline.features.columns import feature_columns
from pipeline.features.spec import build_feature_defs
from pipeline.model.fitting import fit_owned
from pipeline.model.pipeline import build_tail
from pipeline.settings import ModelConfig, StrategyConfig, TuningConfig
from pipeline.training import foldfit
from pipeline.training.dataset import TrainingSet, build_training_set, feature_matrix
from pipeline.training.tuning import TuningContext

ROWS, COLS = 200_000, 40
MB = 2**20


def peak_bytes(step: Callable[[], Any]) -> int:
    """Peak bytes allocated (and tracked) while ``step`` runs, over what existed before."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def test_the_matrix_is_moved_out_of_the_frame_one_column_at_a_time() -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({f"f{j}": rng.standard_normal(ROWS) for j in range(COLS)})
    columns = tuple(frame.columns[:-2])
    size = ROWS * len(columns) * 8
    # Polars' own to_numpy buffer is not traced: the old way shows only astype's extra copy.
    old = peak_bytes(lambda: frame.select(columns).to_numpy().astype(np.float64))
    moved = frame.clone()
    new = peak_bytes(lambda: feature_matrix(moved, columns))
    assert old >= 0.99 * size
    assert new <= size + 2 * ROWS * 8  # the matrix, plus at most a column in flight
    assert moved.columns == frame.columns[-2:]  # each feature left the frame once copied


def test_a_fit_works_in_place_on_the_rows_it_is_handed() -> None:
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((ROWS, COLS)), rng.standard_normal(ROWS)
    X[::97, 3] = np.nan  # the imputer has work to do
    cfg, params = ModelConfig(), {"alpha": 1.0, "selector__k": COLS // 4}
    size = X.nbytes

    def plain() -> None:
        Pipeline(build_tail(cfg, "ridge", params, 7, COLS)).fit(X, y)

    def lean() -> None:
        fit_owned(build_tail(cfg, "ridge", params, 7, COLS), X.copy(), y)

    # The plain fit copies the rows at the imputer (fit and transform) and at the scaler; the
    # lean one holds the copy handed over (1.0) and, like the plain one, the scaler's variance
    # temporary (1.0) plus NaN masks (1/8 each).
    plain_peak, lean_peak = peak_bytes(plain), peak_bytes(lean)
    assert plain_peak >= 3.0 * size, plain_peak / size
    assert lean_peak <= 2.3 * size, lean_peak / size


@pytest.fixture(scope="module")
def nvda() -> tuple[TrainingSet, list[Fold]]:
    model = ModelConfig()
    data = build_training_set(
        sample_prices("NVDA").lazy(), build_feature_defs(model.features), feature_columns(model), 1
    )
    dates = data.dates.to_list()
    folds = [
        Fold(k, dates[0], dates[-1000 + 200 * k - 2], dates[-1000 + 200 * k],
             dates[-1000 + 200 * k + 199], 0, 200)
        for k in range(5)
    ]  # fmt: skip
    return data, folds


def test_auto_fold_threads_follow_the_matrix_size(
    nvda: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, folds = nvda
    assert foldfit.fold_threads(4, data, folds) == 4  # 2 MB of features: a thread per core
    fold_bytes = max(int(data.masks(f)[0].sum()) for f in folds) * data.X.shape[1] * 8
    monkeypatch.setattr(foldfit, "THREADS_BUDGET_BYTES", 3 * foldfit.FOLD_WORKING_SET * fold_bytes)
    assert foldfit.fold_threads(4, data, folds) == 3
    monkeypatch.setattr(foldfit, "THREADS_BUDGET_BYTES", 1)  # large matrix: twice X < one fold's
    assert foldfit.fold_threads(4, data, folds) == 1

    def ctx(fold_jobs: int | None) -> TuningContext:
        tuning = TuningConfig(fold_jobs=fold_jobs, n_jobs=1)
        return TuningContext(ModelConfig(), data, folds, 7, StrategyConfig(), tuning, None)

    assert ctx(None).fold_jobs == 1  # auto follows the budget
    assert ctx(3).fold_jobs == 3  # an explicit setting is used as it is
