"""Which data `score` and `monitor` read for a model when its training file is gone or its
lineage predates the ``data_source`` tag (the trained end to end case is
tests/e2e/test_model_data_e2e.py). Real snapshot store and files, no model needed: the
lineage is built from tags as the registry returns them."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from support import SAMPLE

from pipeline import bootstrap
from pipeline.config import load_config
from pipeline.data.readers import FileSource
from pipeline.data.snapshots import SnapshotSource
from pipeline.errors import DataError
from pipeline.settings import StockpipeConfig
from pipeline.tracking.loader import TrainedOn


@pytest.fixture
def trained(conf_dir: Path, tmp_path: Path) -> tuple[StockpipeConfig, Path, TrainedOn]:
    """QQQ kept as a snapshot from tmp_path/QQQ.csv, as `train --data QQQ.csv` keeps it."""
    cfg = load_config(conf_dir)
    csv = tmp_path / "QQQ.csv"
    shutil.copy(SAMPLE / "QQQ.csv", csv)
    batch = FileSource(csv).load()
    (snap,) = bootstrap.snapshots(cfg).record(batch, "file", {"path": str(csv)})
    tags = {"tickers": "QQQ", "snapshot_ids": snap.id, "data_source": str(csv)}
    return cfg, csv, TrainedOn.from_tags(tags, "M v1")


def test_the_training_file_is_read_as_it_is_now(
    trained: tuple[StockpipeConfig, Path, TrainedOn],
) -> None:
    cfg, csv, model = trained
    data = bootstrap._current(cfg, model)
    assert isinstance(data.source, FileSource) and data.source.path == csv
    assert data.note.startswith(f"data: {csv} as it is now, QQQ: the file M v1 was trained on")
    assert f"not the configured {SAMPLE / 'NVDA.csv'}" in data.note


def test_a_model_older_than_the_data_source_tag_finds_its_file_in_the_manifest(
    trained: tuple[StockpipeConfig, Path, TrainedOn],
) -> None:
    cfg, csv, model = trained
    old = TrainedOn.from_tags({"tickers": "QQQ", "snapshot_ids": model.snapshot_ids[0]}, "M v1")
    assert old.source is None
    data = bootstrap._current(cfg, old)
    assert isinstance(data.source, FileSource) and data.source.path == csv


def test_a_gone_file_falls_back_to_its_newest_snapshots_with_a_warning(
    trained: tuple[StockpipeConfig, Path, TrainedOn], caplog: pytest.LogCaptureFixture
) -> None:
    cfg, csv, model = trained
    csv.unlink()
    with caplog.at_level(logging.WARNING, logger="pipeline.bootstrap"):
        data = bootstrap._current(cfg, model)
    assert isinstance(data.source, SnapshotSource)
    assert data.source.load().tickers == ("QQQ",)
    assert f"{csv} is gone: using the newest snapshots of QQQ" in caplog.text
    assert data.note.startswith(f"data: the newest snapshots of QQQ ({model.snapshot_ids[0]})")


def test_no_file_and_no_snapshot_is_an_error_naming_the_ticker(
    trained: tuple[StockpipeConfig, Path, TrainedOn],
) -> None:
    cfg, csv, model = trained
    csv.unlink()
    shutil.rmtree(bootstrap.snapshots(cfg).root)
    # model_data turns this into the configured data, with this message as the warning
    with pytest.raises(DataError, match="no snapshot of QQQ"):
        bootstrap._current(cfg, model)
    with pytest.raises(DataError, match=f"snapshot {model.snapshot_ids[0]} of M v1 is not in"):
        bootstrap._replayed(cfg, model)
