"""Model parameters live in YAML: the selector's LightGBM and XGBoost's tree method."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO, write_yaml

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.model.selectors import check_selection, make_selector


def test_shipped_values_are_todays_defaults() -> None:
    cfg = load_config(REPO / "conf")
    assert cfg.model.selection.importance_params == {"n_estimators": 100, "num_leaves": 15}
    xgb = next(c for c in cfg.candidates.candidates if c.estimator == "xgboost")
    assert xgb.params["tree_method"] == "hist"


def test_the_selector_uses_the_configured_lightgbm(conf_dir: Path) -> None:
    sel = {"selector": "from_model", "importance_params": {"n_estimators": 7, "num_leaves": 3}}
    write_yaml(conf_dir / "local" / "model.yaml", {"selection": sel})
    cfg = load_config(conf_dir)
    selector = make_selector(cfg.model.selection, {}, 10, 0)
    params = selector.estimator.get_params()
    assert (params["n_estimators"], params["num_leaves"]) == (7, 3)


def test_unknown_selector_params_are_refused_before_training(conf_dir: Path) -> None:
    sel = {"importance_params": {"n_trees": 7}}
    write_yaml(conf_dir / "local" / "model.yaml", {"selection": sel})
    cfg = load_config(conf_dir)
    with pytest.raises(ConfigError, match=r"selection.importance_params.*n_trees"):
        check_selection(cfg.model.selection, 0)
