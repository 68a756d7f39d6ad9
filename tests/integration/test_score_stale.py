"""Issue 22: `score` reports a ticker whose data stopped (delisted, suspended) as stale.

The panel is ``business_day_panel`` (ALPHA full, LATE lists in 2015, GONE delists on
2020-03-31). `score` runs with a real fitted pipeline (features -> imputer -> Ridge), a real
DuckDB warehouse with its prediction log and a real parquet sink. Oracles: the fixture's own
dates (``realdata.DELISTS``, ``realdata.LAST``, ``business_days``) and a second `score` run on
the file without GONE, which must give ALPHA and LATE the very same predictions.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from realdata import DELISTS, LAST, business_day_panel, business_days

from pipeline import bootstrap
from pipeline.cli import main
from pipeline.data.inputs import Inputs
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LoadedModel, PriceBatch
from pipeline.serving.replay import replay
from pipeline.serving.score import ScorePorts, ScoreResult, score, without_stale
from pipeline.serving.sinks import ParquetSink
from pipeline.settings import StockpipeConfig


class Loader:
    """Hands out one fitted pipeline, as the registry would."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def load(self, model_uri: str) -> LoadedModel:
        return self.model


@pytest.fixture(scope="module")
def panel_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("panel") / "panel.csv"
    business_day_panel().write_csv(path)
    return path


def _cfg(conf_dir: Path) -> StockpipeConfig:
    from pipeline.config import load_config

    return load_config(conf_dir)


def _ports(data: Path, model: LoadedModel, store: DuckDBStore) -> ScorePorts:
    return ScorePorts(
        source=FileSource(data),
        store=store,
        loader=Loader(model),
        log=store,
        workspace=bootstrap.scratch_warehouse,
    )


def _score(cfg: StockpipeConfig, data: Path, model: LoadedModel, tmp: Path) -> ScoreResult:
    store = DuckDBStore(tmp / "wh.duckdb")
    return score(cfg, _ports(data, model, store), ParquetSink(tmp / "p.parquet"))


def test_a_delisted_ticker_is_reported_not_predicted_nor_logged(
    conf_dir: Path, tmp_path: Path, panel_csv: Path, ridge_model: LoadedModel
) -> None:
    cfg = _cfg(conf_dir)
    result = _score(cfg, panel_csv, ridge_model, tmp_path)
    assert result.stale_tickers == {"GONE": DELISTS}
    assert result.last_date == LAST
    written = pl.read_parquet(tmp_path / "p.parquet")
    assert sorted(written["ticker"]) == ["ALPHA", "LATE"]
    assert set(written["as_of_date"]) == {LAST}
    logged = DuckDBStore(tmp_path / "wh.duckdb").outcomes()
    assert sorted(logged["ticker"]) == ["ALPHA", "LATE"]
    # GONE's rows never entered the others' predictions: the same as scoring without it.
    alone = tmp_path / "alone"
    alone.mkdir()
    without = alone / "panel.csv"
    pl.read_csv(panel_csv, try_parse_dates=True).filter(pl.col("ticker") != "GONE").write_csv(
        without
    )
    expected = _score(cfg, without, ridge_model, alone)
    assert expected.stale_tickers == {}
    assert written.sort("ticker").equals(expected.frame.sort("ticker"))


def test_the_warning_line_names_each_stale_ticker_and_both_dates(
    conf_dir: Path, tmp_path: Path, panel_csv: Path, ridge_model: LoadedModel
) -> None:
    line = _score(_cfg(conf_dir), panel_csv, ridge_model, tmp_path).stale_warning()
    assert line is not None and "\n" not in line
    assert f"GONE (last bar {DELISTS})" in line and f"last date {LAST}" in line
    assert "ALPHA" not in line and "LATE" not in line


def test_one_day_behind_is_stale_too(panel_csv: Path) -> None:
    # No tolerance (documented): ALPHA without its last row is a day behind LATE.
    frame = pl.read_csv(panel_csv, try_parse_dates=True).filter(
        (pl.col("ticker") != "ALPHA") | (pl.col("date") < LAST)
    )
    kept, stale, last = without_stale(Inputs(PriceBatch(frame, "p.csv", ""), None, None))
    day_before = business_days()[-2]
    assert stale == {"ALPHA": day_before, "GONE": DELISTS} and last == LAST
    assert kept.tickers == ("LATE",)


def test_cli_prints_one_stale_line(
    conf_dir: Path,
    tmp_path: Path,
    panel_csv: Path,
    ridge_model: LoadedModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The registry is replaced by the fitted model: everything from the CLI on is real.
    data = bootstrap.ModelData(FileSource(panel_csv), None, f"data: {panel_csv}")
    store = DuckDBStore(tmp_path / "wh.duckdb")
    monkeypatch.setattr(bootstrap, "model_data", lambda *a, **k: data)
    monkeypatch.setattr(bootstrap, "score_ports", lambda *a: _ports(panel_csv, ridge_model, store))
    out = tmp_path / "p.parquet"
    result = CliRunner().invoke(
        main, ["score", "--config", str(conf_dir), "--output", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    named = [line for line in result.output.splitlines() if "GONE" in line]
    assert len(named) == 1 and named[0].startswith("warning: "), result.output
    assert f"GONE (last bar {DELISTS})" in named[0] and str(LAST) in named[0]
    assert "wrote 2 row(s)" in result.output


def test_replay_predicts_a_delisted_ticker_only_up_to_its_last_bar(
    conf_dir: Path, tmp_path: Path, panel_csv: Path, ridge_model: LoadedModel
) -> None:
    start, end = dt.date(2020, 3, 23), dt.date(2020, 4, 10)
    store = DuckDBStore(tmp_path / "wh.duckdb")
    out = replay(
        _cfg(conf_dir), _ports(panel_csv, ridge_model, store), ParquetSink(tmp_path / "r.parquet"),
        start, end,
    ).frame  # fmt: skip
    days = business_days(start, end).to_list()
    by_ticker = {t: sorted(g["as_of_date"]) for (t,), g in out.group_by("ticker")}
    assert by_ticker["ALPHA"] == days and by_ticker["LATE"] == days
    assert by_ticker["GONE"] == [d for d in days if d <= DELISTS]
