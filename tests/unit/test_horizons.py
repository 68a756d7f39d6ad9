"""Several horizons: one shared feature computation, one target per horizon, purged folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support import REPO, SAMPLE, write_yaml

from pipeline.bootstrap import scratch_warehouse
from pipeline.config import load_config
from pipeline.data.readers import FileSource
from pipeline.errors import ConfigError
from pipeline.features.columns import feature_columns
from pipeline.features.engine import add_features, collect
from pipeline.features.spec import build_feature_defs
from pipeline.settings import FoldsConfig, ModelConfig, TargetConfig
from pipeline.training.dataset import build_training_set
from pipeline.training.plan import plan_horizons
from pipeline.training.worker import _horizon_of_study

MODEL = ModelConfig(target=TargetConfig(horizons=(1, 5, 20)))


@pytest.fixture(scope="module")
def plans() -> dict[int, object]:
    source = FileSource(SAMPLE / "NVDA.csv")
    bench = FileSource(SAMPLE / "SPY.csv", None)
    return plan_horizons(MODEL, FoldsConfig(n_folds=3), "error", source, bench, scratch_warehouse())


def test_shared_features_equal_per_horizon_features(nvda: pl.DataFrame) -> None:
    """Computing the features once and adding each target gives the very bits a separate
    computation per horizon gives."""
    defs = build_feature_defs(ModelConfig().features.model_copy(update={"market": None}))
    columns = tuple(c for c in feature_columns(ModelConfig()) if c in {d.name for d in defs})
    prices = nvda.lazy()
    featured = collect(add_features(prices, defs))
    for h in (1, 5, 20):
        alone = build_training_set(prices, defs, columns, h)
        shared = build_training_set(prices, defs, columns, h, featured)
        assert np.array_equal(alone.X, shared.X, equal_nan=True)
        assert np.array_equal(alone.y, shared.y)
        assert alone.dates.equals(shared.dates)


def test_each_horizon_has_its_forward_target(plans: dict[int, object], nvda: pl.DataFrame) -> None:
    """Oracle: y_t = log(close_{t+h} / close_t) from a numpy loop over the raw closes."""
    close = nvda["close"].to_numpy()
    index = {d: i for i, d in enumerate(nvda["date"].to_list())}
    for h, plan in plans.items():
        data = plan.data  # type: ignore[attr-defined]
        rows = np.array([index[d] for d in data.dates.to_list()])
        assert rows.max() + h == len(close) - 1  # the last labelled row sees the last close
        expected = np.array([np.log(close[i + h] / close[i]) for i in rows])
        np.testing.assert_allclose(data.y, expected, rtol=0, atol=1e-12)


def test_every_horizon_purges_at_least_its_horizon(
    plans: dict[int, object], nvda: pl.DataFrame
) -> None:
    index = {d: i for i, d in enumerate(nvda["date"].to_list())}
    for h, plan in plans.items():
        assert plan.layout.spec.purge >= h  # type: ignore[attr-defined]
        for fold in plan.folds:  # type: ignore[attr-defined]
            # the last training label spans (train_end, train_end + h]: before the test window
            assert index[fold.train_end] + h < index[fold.test_start], (h, fold)


def test_horizons_train_on_the_same_tickers_and_features(plans: dict[int, object]) -> None:
    columns = {plan.data.columns for plan in plans.values()}  # type: ignore[attr-defined]
    assert len(columns) == 1
    # longer horizons lose their unlabelled tail rows, nothing else
    sizes = {h: len(plan.data.y) for h, plan in plans.items()}  # type: ignore[attr-defined]
    assert sizes[1] - sizes[5] == 4 and sizes[1] - sizes[20] == 19


def test_a_worker_joins_the_horizon_its_study_names(conf_dir: Path) -> None:
    write_yaml(conf_dir / "local" / "model.yaml", {"target": {"horizons": [1, 5]}})
    cfg = load_config(conf_dir)
    assert _horizon_of_study(cfg, "prices_h5").model.target.horizons == (5,)
    assert _horizon_of_study(cfg, "prices_h1").tracking.registered_model == "StocksPredictionModel"
    with pytest.raises(ConfigError, match="named <study>_h<horizon>"):
        _horizon_of_study(cfg, "prices")
    with pytest.raises(ConfigError, match="named <study>_h<horizon>"):
        _horizon_of_study(cfg, "prices_h20")
    single = load_config(REPO / "conf")
    assert _horizon_of_study(single, "anything") is single
