"""The published JSON schema of the train summary is current and describes what train writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import train_ports
from pydantic import ValidationError
from support import REPO

from pipeline.config import load_config
from pipeline.schemas import write_schema
from pipeline.training.summary import SCHEMA_PATH, TrainSummary
from pipeline.training.train import train

PUBLISHED = REPO / SCHEMA_PATH


def test_generator_writes_the_schema(tmp_path: Path) -> None:
    path = write_schema(TrainSummary, tmp_path / "s.json")
    assert json.loads(path.read_text())["title"] == "TrainSummary"


@pytest.mark.slow
def test_train_summary_validates_against_the_published_schema(conf_dir: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    cfg = load_config(conf_dir)
    summary = train(cfg, train_ports())
    # exactly what `stockpipe train --summary` writes
    doc = json.loads(json.dumps(summary.model_dump(mode="json"), allow_nan=False))
    jsonschema.validate(doc, json.loads(PUBLISHED.read_text(encoding="utf-8")))
    assert TrainSummary.model_validate(doc) == summary  # and it reads back losslessly

    # A summary whose two zero-return baselines disagree is not a summary.
    doc["baselines"]["zero_return"]["rmse"] *= 1.01
    with pytest.raises(ValidationError, match=r"backtest\.baselines\.zero_return"):
        TrainSummary.model_validate(doc)
