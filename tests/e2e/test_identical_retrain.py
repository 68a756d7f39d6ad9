"""A retrain on the same data, config, seed and code registers nothing new (issue 21, 11e).

Real `stockpipe train --trials 1` runs on a short NVDA history, a real sqlite MLflow store.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from support import SAMPLE, sqlite_uri, write_yaml

from pipeline.cli import main

RIDGE_ONLY = {
    "candidates": [
        {
            "name": "ridge",
            "estimator": "ridge",
            "n_trials": 1,
            "space": {"alpha": {"type": "float", "low": 0.1, "high": 100.0, "log": True}},
        }
    ]
}


def _train(conf: Path, summary: Path, *extra: str) -> dict[str, object]:
    args = ["train", "--config", str(conf), "--trials", "1", "--quiet", "--summary", str(summary)]
    result = CliRunner().invoke(main, [*args, *extra])
    assert result.exit_code == 0, result.output
    champion: dict[str, object] = json.loads(summary.read_text())["champion"]
    return champion


@pytest.mark.slow
def test_identical_retrain_keeps_the_version_it_would_copy(conf_dir: Path, tmp_path: Path) -> None:
    short = tmp_path / "NVDA.csv"
    short.write_text("\n".join((SAMPLE / "NVDA.csv").read_text().splitlines()[:1000]) + "\n")
    write_yaml(conf_dir / "local" / "model_candidates.yaml", RIDGE_ONLY)
    folds = {"n_folds": 2, "test_size": 60, "min_train_size": 200}
    write_yaml(conf_dir / "local" / "training.yaml", {"folds": folds})
    data = ("--data", str(short))

    # The same --summary too: every flag is part of the config hash.
    summary = tmp_path / "summary.json"
    first = _train(conf_dir, summary, *data)
    again = _train(conf_dir, summary, *data)
    assert first["version"] == "1" and first["promoted"] is True
    assert again["version"] == "1" and again["alias"] == "champion"
    assert again["promoted"] is False
    assert str(again["reason"]).startswith("identical retrain: v1 (@champion)")

    other = _train(conf_dir, summary, *data, "--seed", "7")  # not identical
    assert other["version"] == "2" and "identical" not in str(other["reason"])

    uri = sqlite_uri(tmp_path)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='StocksPredictionModel'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
