"""The promotion gate's decision, branch by branch (pure: config sections in, Decision out)."""

from __future__ import annotations

import math

import pytest

from pipeline.settings import PromotionConfig, TuningConfig
from pipeline.training.promotion import decide

RMSE = TuningConfig(primary_metric="rmse")  # minimise
SHARPE = TuningConfig(primary_metric="sharpe")  # maximise
GATE = PromotionConfig()


def test_force_promotes_and_records_the_incumbent() -> None:
    d = decide(RMSE, GATE, 0.5, "3", 0.1, force=True)
    assert d.promoted and d.forced and d.incumbent_version == "3" and d.incumbent_value == 0.1
    assert "forced with --force-promote (rmse 0.5 vs incumbent v3 0.1)" in d.reason
    alone = decide(RMSE, GATE, 0.5, None, None, force=True)
    assert alone.promoted and alone.reason.endswith("(rmse 0.5)")


def test_first_model_is_promoted() -> None:
    d = decide(RMSE, GATE, 0.2, None, None, force=False)
    assert d.promoted and not d.forced and "no incumbent" in d.reason


def test_disabled_gate_promotes() -> None:
    d = decide(RMSE, PromotionConfig(enabled=False), 9.0, "1", 0.1, force=False)
    assert d.promoted and "disabled" in d.reason


@pytest.mark.parametrize(("score", "problem"), [(None, None), (0.1, "load failed")])
def test_incumbent_that_cannot_be_evaluated_is_kept(
    score: float | None, problem: str | None
) -> None:
    d = decide(RMSE, GATE, 0.01, "2", score, force=False, problem=problem)
    assert not d.promoted and d.incumbent_version == "2" and "could not be re-evaluated" in d.reason
    assert d.incumbent_value is None


def test_undefined_new_value_is_not_promoted() -> None:
    d = decide(SHARPE, GATE, math.nan, "1", 0.5, force=False)
    assert not d.promoted and "undefined" in d.reason


@pytest.mark.parametrize(
    ("tuning", "new", "old", "promoted"),
    [
        (RMSE, 0.09, 0.10, True),  # lower is better
        (RMSE, 0.11, 0.10, False),
        (RMSE, 0.10, 0.10, False),  # a tie keeps the incumbent
        (SHARPE, 1.2, 1.0, True),  # higher is better
        (SHARPE, 0.8, 1.0, False),
    ],
)
def test_direction_decides(tuning: TuningConfig, new: float, old: float, promoted: bool) -> None:
    d = decide(tuning, GATE, new, "1", old, force=False)
    assert d.promoted is promoted and d.incumbent_value == old
    assert ("beat incumbent v1" if promoted else "did not beat incumbent v1") in d.reason


def test_margin_is_required() -> None:
    gate = PromotionConfig(min_improvement=0.05)
    assert not decide(SHARPE, gate, 1.04, "1", 1.0, force=False).promoted
    assert decide(SHARPE, gate, 1.06, "1", 1.0, force=False).promoted
    assert "margin required > 0.05" in decide(SHARPE, gate, 1.01, "1", 1.0, force=False).reason


def test_explicit_direction_overrides_the_metric_default() -> None:
    tuning = TuningConfig(primary_metric="rmse", direction="maximize")
    assert decide(tuning, GATE, 0.2, "1", 0.1, force=False).promoted
