"""Files we write: the umask's mode (not mkstemp's 0600), atomic, and checked up front.

A non-default umask (027) shows the mode comes from the umask. As root, chmod does not stop
writes, so "unwritable" is a path under /sys or below a regular file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import SAMPLE

import pipeline.training.backtest
import pipeline.training.inspection
from pipeline.atomic import OutputError
from pipeline.cli import main
from pipeline.domain import Fold
from pipeline.evaluation.honesty import TrialSet
from pipeline.evaluation.report import OutOfSample, walk_forward_report
from pipeline.evaluation.report_files import write_report_files
from pipeline.evaluation.results import WalkForwardReport
from pipeline.serving.sinks import ParquetSink
from pipeline.settings import StrategyConfig

MODE = 0o640  # what umask 027 gives a new file


@pytest.fixture(autouse=True)
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def test_parquet_sink_writes_with_the_umask_mode(tmp_path: Path) -> None:
    frame = pl.DataFrame({"ticker": ["NVDA"], "prediction": [0.01]})
    path = ParquetSink(tmp_path / "out" / "predictions.parquet").write(frame)
    assert _mode(path) == MODE and pl.read_parquet(path).equals(frame)
    assert [p.name for p in path.parent.iterdir()] == ["predictions.parquet"]


def test_parquet_sink_below_a_file_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/p\.parquet"):
        ParquetSink(tmp_path / "file" / "p.parquet").write(pl.DataFrame({"a": [1]}))


def test_snapshot_and_manifest_get_the_umask_mode(conf_dir: Path, tmp_path: Path) -> None:
    result = _invoke("data", "import", str(SAMPLE / "QQQ.csv"), "--config", str(conf_dir))
    assert result.exit_code == 0, result.output
    raw = tmp_path / "data" / "raw"
    (parquet,) = raw.rglob("*.parquet")
    assert _mode(parquet) == MODE and _mode(raw / "manifest.jsonl") == MODE
    assert not list(raw.rglob("*.tmp"))


def _report() -> tuple[WalkForwardReport, OutOfSample]:
    n = 60
    rng = np.random.default_rng(0)
    dates = np.arange(np.datetime64("2026-01-01"), np.datetime64("2026-01-01") + n)
    oos = OutOfSample(
        fold=np.repeat([0, 1], n // 2),
        dates=dates,
        tickers=np.array(["NVDA"] * n),
        y_true=rng.normal(0, 0.01, n),
        y_pred=rng.normal(0, 0.01, n),
        last_return=rng.normal(0, 0.01, n),
    )
    day = dt.date(2026, 1, 1)
    folds = [Fold(k, dt.date(2025, 1, 1), dt.date(2025, 12, 31), day, day, 250, 30) for k in (0, 1)]
    cfg = StrategyConfig(bootstrap_samples=100)
    return walk_forward_report(oos, folds, cfg, 1, TrialSet(1, 0.0)), oos


def test_report_files_get_the_umask_mode(tmp_path: Path) -> None:
    report, oos = _report()
    paths = write_report_files(tmp_path / "bt", report, oos, StrategyConfig(), 1)
    assert sorted(p.name for p in (tmp_path / "bt").iterdir()) == sorted(p.name for p in paths)
    assert {_mode(p) for p in paths} == {MODE}
    assert json.loads((tmp_path / "bt" / "metrics.json").read_text())["rmse"] == report.rmse
    for png in (tmp_path / "bt").glob("*.png"):
        assert png.read_bytes().startswith(b"\x89PNG")


def test_a_crash_mid_report_leaves_the_previous_files_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report, oos = _report()
    out = tmp_path / "bt"
    write_report_files(out, report, oos, StrategyConfig(), 1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(self: pl.DataFrame, file: Path, *args: Any, **kwargs: Any) -> None:
        Path(file).write_bytes(b"PAR1 half a row group")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", crash)
    with pytest.raises(OSError, match="No space"):
        write_report_files(out, report, oos, StrategyConfig(), 1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def _no_work(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the work started before the output path was checked")


@pytest.mark.parametrize(
    "where", ["/sys/stockpipe/features.parquet", "{tmp}/file/f.parquet", "{tmp}/folder.parquet"]
)
def test_features_checks_its_output_before_the_work(
    conf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.parquet").mkdir()  # a folder where the file would go
    monkeypatch.setattr(pipeline.training.inspection, "feature_table", _no_work)
    output = where.format(tmp=tmp_path)
    result = _invoke("features", "--config", str(conf_dir), "--output", output)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: --output {output}")


@pytest.mark.parametrize("where", ["/sys/stockpipe/backtest", "{tmp}/file", "{tmp}/file/bt"])
def test_backtest_checks_its_output_folder_before_the_work(
    conf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(pipeline.training.backtest, "backtest", _no_work)
    output = where.format(tmp=tmp_path)
    result = _invoke("backtest", "--config", str(conf_dir), "--output-dir", output)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: --output-dir {output}")
