"""One way to switch a feature family off: ``enabled: false``, on every family, in any file."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import overlay

from pipeline.config import load_config
from pipeline.features.columns import feature_columns
from pipeline.features.spec import FeaturesConfig, build_feature_defs

FAMILIES = [k for k in FeaturesConfig.model_fields if k != "dtype"]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_takes_enabled_false(family: str) -> None:
    cfg = FeaturesConfig.model_validate(
        {"log_return": {"windows": [1]}, family: {"enabled": False}}
    )
    on = [k for k, _ in cfg.families()]
    assert family not in on
    if family != "log_return":
        assert on == ["log_return"] + [k for k in on if k != "log_return"]


def test_an_overlay_switches_off_a_family_the_base_declares(conf_dir: Path) -> None:
    base = feature_columns(load_config(conf_dir).model)
    assert "natr_14" in base and "stoch_k_14" in base
    overlay(conf_dir, "model", features={"natr": {"enabled": False}, "stochastic": None})
    model = load_config(conf_dir).model
    names = feature_columns(model)
    assert "natr_14" not in names and not any(n.startswith("stoch_") for n in names)
    assert set(names) == set(base) - {"natr_14", "stoch_k_14", "stoch_d_14_3"}
    assert "natr" not in {d.name for d in build_feature_defs(model.features)}


def test_switching_every_family_off_is_the_no_features_error(tmp_path: Path) -> None:
    from pipeline.features.spec import declared_families

    with pytest.raises(ValueError, match="no features"):
        declared_families({"log_return": {"enabled": False}})
