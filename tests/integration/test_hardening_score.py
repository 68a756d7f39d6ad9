"""Issue 10 regressions for `score` and fold layouts: too little history never predicts.

`score` runs with a real fitted pipeline (PolarsFeatures -> imputer -> Ridge) behind a
hand-written loader, a real DuckDB file and a real parquet sink. Fold layouts are computed
by the real SQL view in an in-memory DuckDB.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import polars as pl
import pytest
from support import REPO, SAMPLE, nvda_rows, write_csv

from pipeline.bootstrap import scratch_warehouse
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LoadedModel
from pipeline.errors import DataError
from pipeline.serving.score import ScorePorts, score
from pipeline.serving.sinks import ParquetSink
from pipeline.settings import FoldsConfig, StockpipeConfig
from pipeline.training.folds import resolve_folds


class Loader:
    """Hands out one fitted pipeline, as the registry would."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def load(self, model_uri: str) -> LoadedModel:
        return self.model


def _score(cfg: StockpipeConfig, data: Path, model: LoadedModel, tmp: Path) -> object:
    ports = ScorePorts(
        source=FileSource(data),
        store=DuckDBStore(tmp / "wh.duckdb"),
        loader=Loader(model),
        workspace=scratch_warehouse,
    )
    return score(cfg, ports, ParquetSink(tmp / "out" / "p.parquet"))


def _cfg(conf_dir: Path, short_history: str = "error") -> StockpipeConfig:
    from pipeline.config import load_config

    cfg = load_config(conf_dir)
    data = cfg.data.model_copy(update={"short_history": short_history})
    return cfg.model_copy(update={"data": data})


@pytest.mark.parametrize("rows", [1, 5])
def test_score_refuses_a_too_short_file(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel, rows: int
) -> None:
    data = write_csv(nvda_rows(rows).drop("ticker"), tmp_path / "NVDA.csv")
    need = ridge_model.warmup + 1
    with pytest.raises(DataError, match=rf"NVDA has {rows} row\(s\); need {need} per ticker"):
        _score(_cfg(conf_dir), data, ridge_model, tmp_path)
    assert not (tmp_path / "out").exists() and not (tmp_path / "wh.duckdb").exists()


def test_score_panel_refuses_or_skips_a_short_ticker(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel
) -> None:
    panel = write_csv(
        pl.concat([nvda_rows(400), nvda_rows(ridge_model.warmup, "TINY")]), tmp_path / "p.csv"
    )
    with pytest.raises(DataError, match=rf"TINY has {ridge_model.warmup} row\(s\)"):
        _score(_cfg(conf_dir), panel, ridge_model, tmp_path)
    result = _score(_cfg(conf_dir, "skip"), panel, ridge_model, tmp_path)
    assert result.skipped == {"TINY": ridge_model.warmup}  # type: ignore[attr-defined]
    written = pl.read_parquet(tmp_path / "out" / "p.parquet")
    assert written["ticker"].to_list() == ["NVDA"]


def test_prediction_file_has_the_umask_mode(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel
) -> None:
    _score(_cfg(conf_dir), SAMPLE / "NVDA.csv", ridge_model, tmp_path)
    mode = (tmp_path / "out" / "p.parquet").stat().st_mode & 0o777
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def _panel_store(days: int) -> tuple[DuckDBStore, dict]:
    store = DuckDBStore(":memory:")
    frames = []
    for name in ("NVDA", "SPY", "QQQ"):
        frame = FileSource(SAMPLE / f"{name}.csv").load().frame.tail(days)
        frames.append(frame.with_columns(pl.lit(name).alias("ticker")))
    batch = FileSource(SAMPLE / "NVDA.csv").load()
    batch = type(batch)(pl.concat(frames), "panel", "sha")
    store.upsert(batch)
    return store, batch.ranges


def test_default_folds_fit_three_tickers_of_1500_days() -> None:
    store, ranges = _panel_store(1500)
    layout = resolve_folds(store, ("NVDA", "QQQ", "SPY"), ranges, FoldsConfig(), horizon=1)
    assert len(layout.folds) == 5 and layout.spec.test_size < 250
    assert layout.adapted and "does not fit" in layout.adapted
    assert layout.folds[0].train_end < layout.folds[0].test_start


def test_explicit_folds_are_never_changed() -> None:
    store, ranges = _panel_store(1500)
    explicit = FoldsConfig(n_folds=5, test_size=250)
    with pytest.raises(DataError, match="min_train_size"):
        resolve_folds(store, ("NVDA", "QQQ", "SPY"), ranges, explicit, horizon=1)
    only_size = FoldsConfig(test_size=250)  # n_folds left to fit
    layout = resolve_folds(store, ("NVDA", "QQQ", "SPY"), ranges, only_size, horizon=1)
    assert layout.spec.test_size == 250 and len(layout.folds) == 3


def test_no_layout_fits_a_too_short_history() -> None:
    store, ranges = _panel_store(600)
    with pytest.raises(DataError, match="no smaller layout fits"):
        resolve_folds(store, ("NVDA", "QQQ", "SPY"), ranges, FoldsConfig(), horizon=1)


@pytest.mark.parametrize("venv", [True, False])
def test_makefile_finds_the_project_venv(tmp_path: Path, venv: bool) -> None:
    (tmp_path / "Makefile").write_text((REPO / "Makefile").read_text())
    if venv:
        (tmp_path / ".venv" / "bin").mkdir(parents=True)
    out = subprocess.run(
        ["make", "-n", "train", "test"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    prefix = ".venv/bin/" if venv else ""
    assert f"{prefix}stockpipe train --config conf/" in out.splitlines()[0]
    assert out.splitlines()[1].startswith(f"{prefix}python -m pytest")
