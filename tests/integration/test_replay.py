"""Replay scoring (`stockpipe score --start D1 --end D2`): every trading date of a range,
predicted as a plain `score` would have been on that evening.

The oracle is `score` itself, run on the input cut at each date (rows <= date), with fitted
pipelines (features -> imputer -> Ridge) behind a hand-written loader, real DuckDB files and a
real parquet sink; the CLI test loads a model registered in a real sqlite MLflow store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from support import SAMPLE, sample_prices, with_bench

import pipeline.serving.replay as replay_module
import pipeline.serving.score as score_module
from pipeline.bootstrap import scratch_warehouse
from pipeline.cli import main
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import PREDICTION_COLUMNS, LoadedModel
from pipeline.errors import DataError
from pipeline.features.engine import add_target, collect
from pipeline.features.spec import CrossSection, Ewm, FeaturesConfig, Macd, Market, Windowed
from pipeline.model.transformer import PolarsFeatures
from pipeline.serving.predict import NonFinitePredictionError
from pipeline.serving.replay import ReplayRangeError, ReplayResult, replay
from pipeline.serving.score import ScorePorts, score
from pipeline.serving.sinks import ParquetSink
from pipeline.settings import StockpipeConfig

# EWM, MACD and RSI are recursive (seeded at the window's first row); the market family needs
# the benchmark's close, joined by the warehouse.
RECURSIVE = FeaturesConfig(
    ewm_vol=Ewm(of="logret_1", spans=(10, 30)),
    macd=Macd(fast=12, slow=26, signal=9),
    rsi=Windowed(windows=(14,)),
    market=Market(benchmark="SPY", windows=(20,)),
)
CROSS_SECTION = FeaturesConfig(
    cross_section=CrossSection(of=("logret_5", "rolling_std_logret_1_5"))
)


class Loader:
    """Hands out one fitted pipeline, as the registry would."""

    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def load(self, model_uri: str) -> LoadedModel:
        return self.model


def fit(features: FeaturesConfig, bars: pl.DataFrame, benchmark: str | None = None) -> LoadedModel:
    """The registered pipeline's shape, fitted on ``bars`` (sorted by ticker and date)."""
    labelled = collect(add_target(bars.lazy(), 1)).drop_nulls("target")
    pipe = Pipeline(
        [
            ("features", PolarsFeatures(features.model_dump_json())),
            ("impute", SimpleImputer()),
            ("model", Ridge()),
        ]
    )
    pipe.fit(labelled.drop("target").to_pandas(), labelled["target"].to_numpy())
    warmup = pipe.named_steps["features"].warmup_
    return LoadedModel(pipe, "M", "1", warmup=warmup, horizon=1, benchmark=benchmark, run_id="r1")


@pytest.fixture(scope="module")
def recursive_model() -> LoadedModel:
    return fit(RECURSIVE, with_bench(sample_prices("NVDA")), benchmark="SPY")


def tails(**rows: int) -> pl.DataFrame:
    """A panel: the last ``rows`` sample bars of each ticker (``TINY`` is a copy of QQQ's)."""
    frames = [sample_prices("QQQ" if t == "TINY" else t).tail(n) for t, n in rows.items()]
    return pl.concat(f.with_columns(ticker=pl.lit(t)) for f, t in zip(frames, rows, strict=True))


@pytest.fixture(scope="module")
def cs_model() -> LoadedModel:
    return fit(CROSS_SECTION, tails(NVDA=1500, SPY=1500, QQQ=1500).sort("ticker", "date"))


def config(conf_dir: Path, short_history: str = "error") -> StockpipeConfig:
    from pipeline.config import load_config

    cfg = load_config(conf_dir)
    return cfg.model_copy(
        update={"data": cfg.data.model_copy(update={"short_history": short_history})}
    )


def ports(data: Path, model: LoadedModel, store: DuckDBStore, bench: Path | None) -> ScorePorts:
    return ScorePorts(
        source=FileSource(data),
        store=store,
        benchmark=None if bench is None else FileSource(bench),
        loader=Loader(model),
        log=store,
        workspace=scratch_warehouse,
    )


def run_replay(
    cfg: StockpipeConfig,
    data: Path,
    model: LoadedModel,
    span: tuple[dt.date, dt.date],
    tmp: Path,
    bench: Path | None = None,
) -> ReplayResult:
    store = DuckDBStore(tmp / "wh.duckdb")
    return replay(
        cfg, ports(data, model, store, bench), ParquetSink(tmp / "out" / "r.parquet"), *span
    )


def score_cut_at(
    cfg: StockpipeConfig,
    bars: pl.DataFrame,
    day: dt.date,
    model: LoadedModel,
    tmp: Path,
    bench: Path | None = None,
) -> pl.DataFrame:
    """A plain `score` run on ``bars`` cut at ``day`` (rows <= day): its rows as of ``day``."""
    cut = tmp / "cut.parquet"
    bars.filter(pl.col("date") <= day).write_parquet(cut)
    sink = ParquetSink(tmp / "cut-out.parquet")
    out = score(cfg, ports(cut, model, DuckDBStore(":memory:"), bench), sink).frame
    return out.filter(pl.col("as_of_date") == day)


def assert_same_as_score(
    cfg: StockpipeConfig,
    replayed: pl.DataFrame,
    bars: pl.DataFrame,
    days: list[dt.date],
    model: LoadedModel,
    tmp: Path,
    bench: Path | None = None,
    atol: float = 1e-12,
) -> None:
    for day in days:
        expected = score_cut_at(cfg, bars, day, model, tmp, bench).sort("ticker")
        got = replayed.filter(pl.col("as_of_date") == day).sort("ticker")
        assert got.drop("prediction").equals(expected.drop("prediction")), day
        assert got.height >= 1
        np.testing.assert_allclose(got["prediction"], expected["prediction"], rtol=0, atol=atol)


def picks(frame: pl.DataFrame) -> list[dt.date]:
    """The first, a middle and the last date replayed."""
    dates = frame["as_of_date"].unique().sort()
    return [dates[0], dates[len(dates) // 2], dates[-1]]


# --------------------------------------------------------------------------- equality with score


def test_replay_on_nvda_equals_score_cut_at_each_date(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel
) -> None:
    cfg, nvda = config(conf_dir), sample_prices("NVDA")
    span = (dt.date(2025, 6, 1), dt.date(2026, 1, 31))
    result = run_replay(cfg, SAMPLE / "NVDA.csv", ridge_model, span, tmp_path)
    frame = result.frame
    assert frame.columns == list(PREDICTION_COLUMNS) and result.calls == 1  # one model call
    trading = nvda.filter(pl.col("date").is_between(*span))["date"]
    assert frame["as_of_date"].to_list() == trading.to_list()  # every trading date, once
    assert result.covered == (trading[0], trading[-1], trading.len())
    assert pl.read_parquet(tmp_path / "out" / "r.parquet").equals(frame)
    assert_same_as_score(cfg, frame, nvda, picks(frame), ridge_model, tmp_path)


@pytest.mark.slow  # seconds: keeps the fast suite under 2 minutes
def test_recursive_features_match_score_once_both_read_the_same_rows(
    conf_dir: Path, tmp_path: Path, recursive_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EWM/MACD/RSI are seeded at the first row read: replay reads further back than a `score`
    of a later date, so the two agree to the seed's leftover weight (< 1e-8 of a feature's
    scale; up to ~4e-12 here), and exactly when `score` reads from the same first row."""
    cfg, nvda, spy = config(conf_dir), sample_prices("NVDA"), SAMPLE / "SPY.csv"
    span = (dt.date(2026, 3, 1), dt.date(2026, 9, 25))
    frame = run_replay(cfg, SAMPLE / "NVDA.csv", recursive_model, span, tmp_path, spy).frame
    days = picks(frame)
    assert_same_as_score(cfg, frame, nvda, days[:1], recursive_model, tmp_path, spy)  # same rows
    assert_same_as_score(cfg, frame, nvda, days, recursive_model, tmp_path, spy, atol=1e-10)
    # `score` reads warm-up + margin rows before its date; widen the margin to replay's window.
    for day in days:
        extra = nvda.filter(pl.col("date").is_between(days[0], day, closed="left")).height
        monkeypatch.setattr(score_module, "HISTORY_MARGIN", replay_module.HISTORY_MARGIN + extra)
        assert_same_as_score(cfg, frame, nvda, [day], recursive_model, tmp_path, spy)


def test_replay_on_a_panel_of_different_lengths_equals_score(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel
) -> None:
    cfg, bars = config(conf_dir), tails(NVDA=300, SPY=200, QQQ=120)
    bars.write_parquet(tmp_path / "panel.parquet")
    span = (dt.date(2026, 6, 1), dt.date(2026, 9, 25))
    result = run_replay(cfg, tmp_path / "panel.parquet", ridge_model, span, tmp_path)
    frame = result.frame
    assert sorted(frame["ticker"].unique()) == ["NVDA", "QQQ", "SPY"] and result.calls == 1
    assert frame.select("ticker", "as_of_date", "horizon").is_unique().all()
    in_range = bars.filter(pl.col("date").is_between(*span))
    assert frame.height == in_range.height  # one row per ticker and trading date
    assert_same_as_score(cfg, frame, bars, picks(frame), ridge_model, tmp_path)


def test_a_ticker_scorable_mid_range_is_refused_or_left_out_as_score_would(
    conf_dir: Path, tmp_path: Path, cs_model: LoadedModel
) -> None:
    """TINY has warm-up + 1 rows only from the middle of the range on. Before that, `score`
    leaves it out of the panel (so out of the cross-sectional ranks too), and so does replay."""
    bars = tails(NVDA=300, SPY=300, QQQ=300, TINY=cs_model.warmup + 30)
    bars.write_parquet(tmp_path / "panel.parquet")
    span = (bars["date"].unique().sort()[-60], dt.date(2026, 9, 25))
    with pytest.raises(DataError, match=rf"TINY has 1 row\(s\) up to .*need {cs_model.warmup + 1}"):
        run_replay(config(conf_dir), tmp_path / "panel.parquet", cs_model, span, tmp_path)
    assert not (tmp_path / "out").exists() and not (tmp_path / "wh.duckdb").exists()
    cfg = config(conf_dir, "skip")
    result = run_replay(cfg, tmp_path / "panel.parquet", cs_model, span, tmp_path)
    assert result.skipped == {"TINY": cs_model.warmup} and result.calls == 2
    tiny = result.frame.filter(pl.col("ticker") == "TINY")["as_of_date"]
    dates = result.frame["as_of_date"].unique().sort().to_list()
    first = dates.index(tiny[0])
    assert tiny.len() == 30 and first > 0
    days = [dates[0], dates[first - 1], dates[first], dates[-1]]
    assert_same_as_score(cfg, result.frame, bars, days, cs_model, tmp_path)


def test_long_ranges_are_cut_into_calls_that_give_the_same_rows(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, span = config(conf_dir), (dt.date(2026, 1, 1), dt.date(2026, 9, 25))
    whole = run_replay(cfg, SAMPLE / "NVDA.csv", ridge_model, span, tmp_path)
    monkeypatch.setattr(replay_module, "CHUNK_ROWS", 50)
    cut = run_replay(cfg, SAMPLE / "NVDA.csv", ridge_model, span, tmp_path)
    assert cut.calls == -(-whole.frame.height // 50) and whole.calls == 1
    assert cut.frame.drop("prediction").equals(whole.frame.drop("prediction"))
    np.testing.assert_allclose(cut.frame["prediction"], whole.frame["prediction"], atol=1e-12)


# --------------------------------------------------------------------------- leakage


def test_prices_after_a_date_never_change_replayed_predictions_up_to_it(
    conf_dir: Path, tmp_path: Path, recursive_model: LoadedModel
) -> None:
    cfg, day = config(conf_dir), dt.date(2026, 6, 15)
    span = (dt.date(2026, 4, 1), dt.date(2026, 9, 25))
    rng = np.random.default_rng(7)
    runs = []
    for name, damage in (("clean", False), ("damaged", True)):
        folder = tmp_path / name
        folder.mkdir()
        for ticker in ("NVDA", "SPY"):
            bars = sample_prices(ticker)
            bars = perturb_after(bars, day, rng) if damage else bars
            bars.write_parquet(folder / f"{ticker}.parquet")
        data, bench = folder / "NVDA.parquet", folder / "SPY.parquet"
        runs.append(run_replay(cfg, data, recursive_model, span, folder, bench).frame)
    clean, damaged = runs
    upto = pl.col("as_of_date") <= day
    assert clean.filter(upto).equals(damaged.filter(upto))  # bit-identical
    assert clean.filter(upto).height > 40
    after = clean.filter(~upto)["prediction"] - damaged.filter(~upto)["prediction"]
    assert (after.abs() > 1e-9).mean() > 0.9  # the damage is real, and it is seen after `day`


def perturb_after(bars: pl.DataFrame, day: dt.date, rng: np.random.Generator) -> pl.DataFrame:
    """Every bar after ``day`` rescaled at random (still a valid bar: high >= open, close...)."""
    later = (bars["date"] > day).to_numpy()
    price = np.where(later, rng.uniform(0.97, 1.03, bars.height), 1.0)
    volume = np.where(later, rng.uniform(0.5, 2.0, bars.height), 1.0)
    return bars.with_columns(
        pl.col("open", "high", "low", "close") * pl.Series(price),
        pl.col("volume") * pl.Series(volume),
    )


# --------------------------------------------------------------------------- the prediction log


def test_replay_logs_its_rows_idempotently_and_a_refused_replay_writes_nothing(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel
) -> None:
    cfg, data, model = config(conf_dir), SAMPLE / "NVDA.csv", replace(ridge_model, run_id="r1")
    refusals = [
        ((dt.date(2026, 2, 1), dt.date(2026, 1, 1)), ReplayRangeError, "reversed"),
        ((dt.date(2030, 1, 1), dt.date(2030, 2, 1)), ReplayRangeError, "no trading date"),
        ((dt.date(1999, 1, 1), dt.date(1999, 3, 1)), DataError, "not enough history"),
    ]
    for span, error, message in refusals:
        with pytest.raises(error, match=message):
            run_replay(cfg, data, model, span, tmp_path)
        assert not (tmp_path / "out").exists() and not (tmp_path / "wh.duckdb").exists()
    span = (dt.date(2026, 7, 1), dt.date(2026, 9, 25))
    for _ in range(2):  # the same range again replaces its rows
        written = run_replay(cfg, data, model, span, tmp_path).frame
        logged = DuckDBStore(tmp_path / "wh.duckdb").outcomes()
        assert (
            logged.height
            == written.height
            == pl.read_parquet(tmp_path / "out" / "r.parquet").height
        )
        assert logged["source"].unique().to_list() == ["replay"]
        assert logged.sort("as_of_date")["prediction"].equals(written["prediction"])
        assert logged["run_id"].unique().to_list() == ["r1"]


class NanAtTheEnd:
    """A model that cannot handle the last three bars it is given."""

    def predict(self, frame: Any) -> np.ndarray:
        out = np.zeros(len(frame))
        out[-3:] = np.nan
        return out


def test_a_non_finite_prediction_refuses_the_whole_replay(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel
) -> None:
    model = replace(ridge_model, predictor=NanAtTheEnd())
    last3 = sample_prices("NVDA")["date"][-3]
    span = (dt.date(2026, 7, 1), dt.date(2026, 9, 25))
    with pytest.raises(NonFinitePredictionError, match=rf"\['NVDA'\] \(3 rows, first {last3}\)"):
        run_replay(config(conf_dir), SAMPLE / "NVDA.csv", model, span, tmp_path)
    assert not (tmp_path / "out").exists() and not (tmp_path / "wh.duckdb").exists()


# --------------------------------------------------------------------------- CLI


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["score", *args])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--start", "2026-02-01", "--end", "2026-01-01"], "--start 2026-02-01 is after --end"),
        # The data comes from the model's lineage, so the model is looked up before the range
        # meets the data (the empty range itself: test_replay_refuses_a_bad_range above).
        (["--start", "2031-01-01", "--end", "2031-12-31"], "no registered model named"),
        (["--start", "2026-01-01"], "--start and --end go together"),
        (["--end", "2026-01-01"], "--start and --end go together"),
        (["--start", "01/02/2026", "--end", "2026-03-01"], "Invalid value for '--start'"),
    ],
)
def test_cli_refuses_a_bad_range_with_exit_2(
    conf_dir: Path, tmp_path: Path, flags: list[str], message: str
) -> None:
    out = tmp_path / "p.parquet"
    result = invoke("--config", str(conf_dir), "--output", str(out), *flags)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists() and not (tmp_path / "warehouse.duckdb").exists()


@pytest.mark.slow  # logs a real model to MLflow (a few seconds), as test_model_uris does
def test_cli_replay_with_the_registered_champion_equals_cli_score_on_cut_data(
    conf_dir: Path, tmp_path: Path, ridge_model: LoadedModel
) -> None:
    from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

    cfg = config(conf_dir)
    tracker = MlflowTracker(cfg.tracking_uri, "replay", tmp_path / "artifacts")
    registry = MlflowRegistry(cfg.tracking_uri, cfg.tracking.registered_model)
    example = sample_prices("NVDA").tail(ridge_model.warmup + 5).to_pandas()
    with tracker.start_run("fit") as run:
        uri = run.log_model(ridge_model.predictor, example, {})
        version = registry.register(uri, run.run_id, {"promoted": "true", "horizon": "1"})
    registry.set_alias(cfg.tracking.champion_alias, version, record=True)

    out = tmp_path / "replay.parquet"
    span = ["--start", "2026-08-01", "--end", "2026-09-25"]
    result = invoke("--config", str(conf_dir), "--output", str(out), *span)
    assert result.exit_code == 0, result.output
    replayed = pl.read_parquet(out)
    assert replayed.columns == list(PREDICTION_COLUMNS) and replayed["model_version"][0] == version
    assert f"wrote {replayed.height} row(s)" in result.output
    assert "trading date(s) from 2026-08-03 to 2026-09-25" in result.output
    logged = DuckDBStore(cfg.resolve(cfg.data.warehouse)).outcomes()
    assert logged.filter(pl.col("source") == "replay").height == replayed.height
    day = replayed["as_of_date"][10]
    cut = tmp_path / "NVDA.csv"
    pl.read_csv(SAMPLE / "NVDA.csv", try_parse_dates=True).filter(pl.col("date") <= day).write_csv(
        cut
    )
    one = tmp_path / "one.parquet"
    plain = invoke("--config", str(conf_dir), "--data", str(cut), "--output", str(one))
    assert plain.exit_code == 0, plain.output
    expected = pl.read_parquet(one)
    got = replayed.filter(pl.col("as_of_date") == day)
    assert got.drop("prediction").equals(expected.drop("prediction"))
    assert abs(got["prediction"][0] - expected["prediction"][0]) <= 1e-12
