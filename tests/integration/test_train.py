"""The train use case against fakes for tracking/registry and a real in-memory DuckDB."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fakes import FakeRegistry, FakeTracker, train_ports
from support import write_yaml

from pipeline.config import load_config
from pipeline.errors import ConfigError, DataError, TrackingError
from pipeline.evaluation.forecast import FORECAST_METRICS
from pipeline.features.spec import build_feature_defs, total_warmup
from pipeline.settings import StockpipeConfig
from pipeline.training.train import train


@pytest.fixture
def cfg(conf_dir: Path) -> StockpipeConfig:
    return load_config(conf_dir)


@pytest.mark.slow
def test_train_registers_champion_and_reports(cfg: StockpipeConfig) -> None:
    tracker, registry = FakeTracker(), FakeRegistry()
    summary = train(cfg, train_ports(tracker=tracker, registry=registry))

    assert registry.aliases == {"champion": "1"}
    champ = summary.champion
    assert champ.version == "1" and champ.promoted is True
    assert champ.registered_model == "StocksPredictionModel"
    enabled = [c.name for c in cfg.candidates.candidates if c.enabled]
    assert [c.name for c in summary.candidates] == enabled
    assert all(c.n_trials == 2 for c in summary.candidates)
    best = min(summary.candidates, key=lambda c: c.best_value or math.inf)
    assert champ.candidate == best.name
    assert summary.metrics.rmse == pytest.approx(best.best_value)
    assert len(summary.folds) == cfg.training.folds.n_folds
    zero = summary.baselines.zero_return
    assert set(zero.model_dump()) == set(FORECAST_METRICS)
    assert all(v is not None and math.isfinite(v) for v in summary.metrics.model_dump().values())
    assert summary.data.rows == 6962 and summary.data.tickers == ["NVDA"]
    # the dict-era key lookup still reads the same values
    assert summary["champion"]["version"] == "1" and summary["data"]["tickers"] == ["NVDA"]

    parent = tracker.runs[0]
    assert parent.status == "FINISHED" and "config/resolved_config.yaml" in parent.texts
    assert {r.name for r in tracker.runs[1:]} == set(enabled)
    assert all(r.parent is parent for r in tracker.runs[1:])
    # per-fold metrics are logged with the fold as step
    assert [s for s, _ in parent.metrics["fold_rmse"]] == list(range(5))
    children = tracker.runs[1:]
    assert all(len(c.models) == 1 for c in children) and parent.models == []
    winner = next(c for c in children if c.name == champ["candidate"])
    assert registry.registered["1"]["uri"].endswith(f"{winner.run_id}-1")
    assert len(tracker.trials) == sum(c.n_trials for c in summary.candidates)
    assert all(t.parent in children for t in tracker.trials)
    assert {"backtest/metrics.json", "competition/comparison.csv"} <= set(parent.artifacts)
    tags = registry.registered["1"]["tags"]
    for key in (
        "data_sha256",
        "config_hash",
        "feature_spec_hash",
        "folds_hash",
        "git_commit",
        "seed",
        "package_versions",
        "primary_metric",
        "rmse",
        "promotion_reason",
    ):
        assert tags[key], key
    model, example, _ = winner.models[0]
    assert tags["horizon"] == "1" and tags["benchmark"] == "SPY"
    assert int(tags["warmup_rows"]) == total_warmup(build_feature_defs(cfg.model.features))
    preds = model.predict(example)
    assert preds.shape == (len(example),) and np.isfinite(preds).all()


@pytest.mark.slow
def test_same_seed_same_result(cfg: StockpipeConfig) -> None:
    a = train(cfg, train_ports())
    b = train(cfg, train_ports())
    assert a.metrics == b.metrics
    assert [c.best_params for c in a.candidates] == [c.best_params for c in b.candidates]


def test_unreachable_tracker_fails_before_any_write(cfg: StockpipeConfig) -> None:
    tracker, registry = FakeTracker(reachable=False), FakeRegistry()
    ports = train_ports(tracker=tracker, registry=registry)
    with pytest.raises(TrackingError, match="unreachable"):
        train(cfg, ports)
    assert tracker.runs == [] and registry.registered == {}
    with pytest.raises(DataError):  # the warehouse was never written
        ports.store.history(("NVDA",))


def test_bad_data_registers_nothing(cfg: StockpipeConfig, tmp_path: Path) -> None:
    bad = tmp_path / "BAD.csv"
    bad.write_text("date,open,high,low,close,volume\n2024-01-02,1,2,0.5,oops,10\n")
    tracker, registry = FakeTracker(), FakeRegistry()
    with pytest.raises(DataError, match=r"BAD\.csv: column 'close'"):
        train(cfg, train_ports(bad, tracker=tracker, registry=registry))
    assert tracker.runs == [] and registry.registered == {}


def test_unknown_estimator_param_fails_before_any_work(conf_dir: Path) -> None:
    write_yaml(
        conf_dir / "local" / "model_candidates.yaml",
        {"candidates": [{"name": "broken", "estimator": "ridge", "params": {"no_such": 1}}]},
    )
    cfg = load_config(conf_dir)
    tracker, registry = FakeTracker(), FakeRegistry()
    with pytest.raises(
        ConfigError, match=r"candidate 'broken': unknown parameter\(s\) \['no_such'\]"
    ):
        train(cfg, train_ports(tracker=tracker, registry=registry))
    assert tracker.runs == [] and registry.registered == {}


def test_failure_inside_run_marks_it_failed_and_registers_nothing(conf_dir: Path) -> None:
    # a valid name with an invalid value only fails when the estimator is fitted
    write_yaml(
        conf_dir / "local" / "model_candidates.yaml",
        {"candidates": [{"name": "broken", "estimator": "ridge", "params": {"alpha": "lots"}}]},
    )
    cfg = load_config(conf_dir)
    tracker, registry = FakeTracker(), FakeRegistry()
    with pytest.raises(Exception, match="alpha"):
        train(cfg, train_ports(tracker=tracker, registry=registry))
    assert tracker.runs[0].status == "FAILED" and registry.registered == {}


@pytest.mark.slow
def test_panel_training(conf_dir: Path, tmp_path: Path, panel: pl.DataFrame) -> None:
    data = tmp_path / "panel.parquet"
    panel.write_parquet(data)
    cfg = load_config(conf_dir)
    summary = train(cfg, train_ports(data))
    assert summary.data.tickers == ["NVDA", "QQQ", "SPY"]
    assert summary.folds[0].test_rows == 3 * 250
