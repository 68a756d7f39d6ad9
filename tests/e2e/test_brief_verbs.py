"""The brief's verbs and options: `tune` and `train --no-register` register nothing, `predict`
is `score`, and model.yaml can name one estimator instead of a candidates file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import make_project, sqlite_uri, write_yaml

from pipeline.cli import main

pytestmark = pytest.mark.slow

RIDGE = {"candidates": [{"name": "ridge", "estimator": "ridge", "params": {"alpha": 10.0}}]}
TRAINING = {"folds": {"n_folds": 3}}


def _invoke(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def _registered(root: Path) -> list[Any]:
    uri = sqlite_uri(root)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()


@pytest.mark.parametrize("verb", [("tune",), ("train", "--no-register")])
def test_tune_tracks_everything_and_registers_nothing(
    tmp_path: Path, verb: tuple[str, ...]
) -> None:
    conf = make_project(tmp_path, training=TRAINING, candidates=RIDGE)
    summary = tmp_path / "s.json"
    out = _invoke(*verb, "--config", str(conf), "--trials", "1", "--summary", str(summary))
    doc = json.loads(summary.read_text())
    champion = doc["champion"]
    assert champion["version"] is None and champion["alias"] is None
    assert champion["promoted"] is False and "not registered" in champion["reason"]
    assert _registered(tmp_path) == []
    assert f"--model-uri {champion['model_uri']}" in out.output
    # the winner's run and its report are tracked as with train
    client = mlflow.MlflowClient(tracking_uri=sqlite_uri(tmp_path))
    run = client.get_run(champion["parent_run_id"])
    assert run.data.tags["registered_version"] == ""
    assert "backtest/metrics.json" in {
        a.path for a in client.list_artifacts(run.info.run_id, "backtest")
    }
    # ... and the logged model scores
    preds = tmp_path / "p.parquet"
    _invoke(
        "score", "--config", str(conf), "--model-uri", champion["model_uri"], "--output", str(preds)
    )
    assert pl.read_parquet(preds).height == 1


def test_predict_is_score(tmp_path: Path) -> None:
    conf = make_project(tmp_path, training=TRAINING, candidates=RIDGE)
    _invoke("train", "--config", str(conf), "--trials", "1", "--summary", str(tmp_path / "s.json"))
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    _invoke("score", "--config", str(conf), "--output", str(a))
    _invoke("predict", "--config", str(conf), "--output", str(b))
    assert (
        pl.read_parquet(a)
        .drop("scored_at", strict=False)
        .equals(pl.read_parquet(b).drop("scored_at", strict=False))
    )


def test_one_estimator_in_model_yaml_needs_no_candidates_file(tmp_path: Path) -> None:
    conf = make_project(tmp_path, training=TRAINING, candidates=None)
    (conf / "base" / "model_candidates.yaml").unlink()
    summary = tmp_path / "s.json"
    args = ("train", "--config", str(conf), "--summary", str(summary))
    refused = _invoke(*args, code=2)
    assert "add model_candidates.yaml, or name one `estimator`" in refused.output
    write_yaml(conf / "local" / "model.yaml", {"estimator": "ridge", "params": {"alpha": 3.0}})
    _invoke(*args)
    doc = json.loads(summary.read_text())
    assert [c["name"] for c in doc["candidates"]] == ["ridge"]
    assert doc["candidates"][0]["n_trials"] == 1  # fixed params: one fit per fold, not 10
    assert doc["champion"]["version"] == "1" and doc["champion"]["promoted"] is True
