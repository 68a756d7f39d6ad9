"""The published JSON schema of the train summary is current and describes what train writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import FakeRegistry, FakeTracker
from pydantic import ValidationError
from support import REPO, SAMPLE

from pipeline.config import load_config
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.training.summary import SCHEMA_PATH, TrainSummary, schema_text, write_schema
from pipeline.training.train import TrainPorts, train

PUBLISHED = REPO / SCHEMA_PATH


def test_published_schema_is_current() -> None:
    assert PUBLISHED.read_text(encoding="utf-8") == schema_text(), (
        f"{SCHEMA_PATH} is stale: regenerate it with `python -m pipeline.training.summary`"
    )


def test_generator_writes_the_schema(tmp_path: Path) -> None:
    path = write_schema(tmp_path / "s.json")
    assert json.loads(path.read_text())["title"] == "TrainSummary"


def test_train_summary_validates_against_the_published_schema(conf_dir: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    cfg = load_config(conf_dir)
    ports = TrainPorts(
        source=FileSource(SAMPLE / "NVDA.csv"),
        store=DuckDBStore(":memory:"),
        tracker=FakeTracker(),
        registry=FakeRegistry(),
        benchmark=FileSource(SAMPLE / "SPY.csv"),
    )
    summary = train(cfg, ports)
    # exactly what `stockpipe train --summary` writes
    doc = json.loads(json.dumps(summary.model_dump(mode="json"), allow_nan=False))
    jsonschema.validate(doc, json.loads(PUBLISHED.read_text(encoding="utf-8")))
    assert TrainSummary.model_validate(doc) == summary  # and it reads back losslessly

    # A summary whose two zero-return baselines disagree is not a summary.
    doc["baselines"]["zero_return"]["rmse"] *= 1.01
    with pytest.raises(ValidationError, match=r"backtest\.baselines\.zero_return"):
        TrainSummary.model_validate(doc)
