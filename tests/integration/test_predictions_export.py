"""`stockpipe predictions` (issue 25 item 3): the prediction log joined with realised outcomes,
exported as parquet or CSV. Real DuckDB warehouse and SQLite log files, the real command;
every export is checked against an oracle that reads the log file with sqlite3 and the json
module and computes ln(close[t + h] / close[t]) from the sample CSVs with numpy, never
against our own code's output."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from legacylog import legacy_warehouse
from support import SAMPLE, invoke_ok, make_project

from pipeline.cli import main
from pipeline.data.predlog import SQLiteLog
from pipeline.data.readers import FileSource
from pipeline.data.warehouse import DuckDBStore
from pipeline.domain import LOG_COLUMNS, PREDICTION_COLUMNS, LoadedModel
from pipeline.evaluation.intervals import IntervalCalibration
from pipeline.serving.api import create_app
from pipeline.serving.predict import log_rows

TICKERS = ("NVDA", "SPY")
CAL = IntervalCalibration(method="split", quantiles={"80": 0.02, "95": 0.05})
ODD = IntervalCalibration(method="split", quantiles={"90": 0.03})  # another model's levels
# The log table as issue 23 made it (sql/log/050_predictions.sql before issue 25).
OLD_DDL = """
CREATE TABLE predictions (
    ticker TEXT NOT NULL, as_of_date TEXT NOT NULL, horizon INTEGER NOT NULL,
    prediction REAL NOT NULL, model_name TEXT NOT NULL, model_version TEXT NOT NULL,
    run_id TEXT, scored_at TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('score', 'api', 'replay', 'cycle')),
    PRIMARY KEY (model_name, model_version, ticker, as_of_date, horizon, source)
) STRICT;
"""
READ_LOG = (
    "SELECT ticker, as_of_date, horizon, prediction, model_name, model_version, run_id, "
    "source, scored_at, {bounds} FROM predictions"
)


def _prices() -> dict[str, pl.DataFrame]:
    return {t: pl.read_csv(SAMPLE / f"{t}.csv", try_parse_dates=True) for t in TICKERS}


def _days(ticker: str) -> list[dt.date]:
    """Dates of ``ticker`` to log: early, middle, and the last few (whose outcomes are not
    known yet for a long enough horizon)."""
    dates = _prices()[ticker]["date"].to_list()
    return [dates[i] for i in (0, 250, 3000, len(dates) - 6, len(dates) - 2, len(dates) - 1)]


def _out(ticker: str, horizon: int, model: LoadedModel, shift: float) -> pl.DataFrame:
    """Predictions of ``model`` for ``ticker`` on the logged days, with its bounds."""
    days = _days(ticker)
    preds = [shift + i * 1e-3 for i in range(len(days))]
    out = pl.DataFrame(
        {
            "ticker": ticker,
            "as_of_date": days,
            "horizon": horizon,
            "prediction": preds,
            "model_name": model.name,
            "model_version": model.version,
        },
        schema_overrides={"horizon": pl.Int32},
    ).select(PREDICTION_COLUMNS)
    if model.intervals is None:
        return out
    bounds = []
    for key, q in model.intervals.quantiles.items():
        half = pl.lit(q) if key != "95" else pl.when(pl.int_range(pl.len()) > 0).then(q)
        bounds += [(pl.col("prediction") - half).alias(f"lower_{key}")]
        bounds += [(pl.col("prediction") + half).alias(f"upper_{key}")]
    return out.with_columns(bounds)  # the first row has no 95% band (as a warm-up row)


MODELS = {
    "v1": LoadedModel(None, "M", "1", warmup=0, horizon=1, run_id="run-1", intervals=CAL),
    "v2": LoadedModel(None, "M", "2", warmup=0, horizon=5, run_id="run-2"),
    "n1": LoadedModel(None, "N", "1", warmup=0, horizon=5, run_id=None, intervals=ODD),
}
# (model, horizon, source, prediction shift) of every logged batch, for both tickers.
BATCHES = [
    ("v1", 1, "score", 0.01),
    ("v1", 1, "api", 0.02),
    ("v2", 5, "replay", -0.01),
    ("v2", 5, "api", 0.03),
    ("n1", 5, "cycle", 0.04),
]


def _log_everything(store: DuckDBStore) -> None:
    for name, horizon, source, shift in BATCHES:
        model = MODELS[name]
        frames = [_out(t, horizon, model, shift) for t in TICKERS]
        store.record(pl.concat([log_rows(f, model, source) for f in frames]))


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Any]:
    """A project whose warehouse holds NVDA and SPY and whose log holds every batch."""
    conf = make_project(tmp_path)
    store = DuckDBStore(tmp_path / "warehouse.duckdb")
    for ticker in TICKERS:
        store.upsert(FileSource(SAMPLE / f"{ticker}.csv").load())
    _log_everything(store)
    store.close()
    return {"conf": conf, "log": tmp_path / "warehouse.log.sqlite", "tmp": tmp_path}


def oracle(log: Path, prices: bool = True) -> list[dict[str, Any]]:
    """Every row of the log file read with sqlite3, its bounds parsed with json, its realised
    return computed with numpy from the sample CSVs (None without ``prices``)."""
    con = sqlite3.connect(log)
    names = {row[1] for row in con.execute("PRAGMA table_info(predictions)")}
    found = con.execute(
        READ_LOG.format(bounds="intervals" if "intervals" in names else "NULL")
    ).fetchall()
    con.close()
    closes = _prices()
    rows = []
    for t, day, h, pred, name, version, run, source, at, bounds in found:
        dates, close = closes[t]["date"].to_list(), closes[t]["close"].to_numpy()
        i = dates.index(dt.date.fromisoformat(day))
        known = prices and i + h < len(dates)
        rows.append(
            {
                "ticker": t,
                "as_of_date": dt.date.fromisoformat(day),
                "horizon": h,
                "prediction": pred,
                **(json.loads(bounds) if bounds else {}),
                "model_name": name,
                "model_version": version,
                "run_id": run,
                "source": source,
                "scored_at": dt.datetime.fromisoformat(at),
                "realised_date": dates[i + h] if known else None,
                "realised": float(np.log(close[i + h] / close[i])) if known else None,
            }
        )
    return rows


ORDER = ("as_of_date", "ticker", "horizon", "model_name", "model_version", "source")
BOUNDS = ["lower_80", "upper_80", "lower_90", "upper_90", "lower_95", "upper_95"]
FIRST = ["ticker", "as_of_date", "horizon", "prediction"]
LAST = ["model_name", "model_version", "run_id", "source", "scored_at", "realised_date", "realised"]


def assert_matches(got: pl.DataFrame, expected: list[dict[str, Any]]) -> None:
    """``got`` holds exactly the ``expected`` rows in the file's order, with the bound
    columns those rows have, each value equal (realised to 1e-12: another log routine)."""
    expected = sorted(expected, key=lambda r: tuple(r[k] for k in ORDER))
    bounds = [c for c in BOUNDS if any(r.get(c) is not None for r in expected)]
    assert got.columns == [*FIRST, *bounds, *LAST]
    assert got.height == len(expected)
    for row, want in zip(got.iter_rows(named=True), expected, strict=True):
        assert row["realised"] == pytest.approx(want["realised"], abs=1e-12, nan_ok=False)
        assert {k: v for k, v in row.items() if k != "realised"} == {
            k: want.get(k) for k in row if k != "realised"
        }


def _export(conf: Path, out: Path, *args: str) -> tuple[pl.DataFrame, str]:
    result = invoke_ok("predictions", "--config", str(conf), "--output", str(out), *args)
    if out.suffix == ".parquet":
        return pl.read_parquet(out), result.output
    types = {"model_version": pl.String, "realised_date": pl.Date, "realised": pl.Float64}
    return pl.read_csv(out, try_parse_dates=True, schema_overrides=types), result.output


def test_the_export_is_the_log_with_its_realised_returns(project: dict[str, Any]) -> None:
    """Every row of every model, source and horizon; bounds of every level any model gives
    (null where a row lacks one); realised null where the future is not in the warehouse."""
    out = project["tmp"] / "exports" / "all.parquet"  # the folder is created
    got, output = _export(project["conf"], out)
    expected = oracle(project["log"])
    assert_matches(got, expected)
    assert got.height == 5 * 2 * 6
    pending = got.filter(pl.col("realised").is_null())
    # Per ticker: h=1 (2 batches) its last day; h=5 (3 batches) its last two logged days.
    assert pending.height == 2 * (2 * 1 + 3 * 2)
    assert pending["as_of_date"].max() == got["as_of_date"].max()
    known = len(expected) - pending.height
    first, last = got["as_of_date"].min(), got["as_of_date"].max()
    assert (
        f"wrote 60 prediction(s) as of {first} to {last} ({known} with a realised return) "
        f"to {out.resolve()}" in output
    )


@pytest.mark.parametrize(
    ("args", "keep"),
    [
        (
            ["--start", "2000-01-01", "--end", "2010-12-31"],
            lambda r: 2000 <= r["as_of_date"].year <= 2010,
        ),
        (
            ["--model-uri", "models:/M/2"],
            lambda r: (r["model_name"], r["model_version"]) == ("M", "2"),
        ),
        (["--model-uri", "models:/N/1", "--source", "cycle"], lambda r: r["model_name"] == "N"),
        (["--source", "score, API"], lambda r: r["source"] in ("score", "api")),
        (
            ["--model-uri", "models:/M/1", "--source", "api", "--start", "2026-01-01"],
            lambda r: (
                r["model_version"] == "1"
                and r["source"] == "api"
                and r["model_name"] == "M"
                and r["as_of_date"] >= dt.date(2026, 1, 1)
            ),
        ),
        (["--model-uri", "models:/M/9"], lambda r: False),  # no such rows: an empty file
    ],
    ids=["dates", "version", "model-source", "sources", "all", "none"],
)
def test_filters(project: dict[str, Any], args: list[str], keep: Any) -> None:
    got, output = _export(project["conf"], project["tmp"] / "f.parquet", *args)
    expected = [r for r in oracle(project["log"]) if keep(r)]
    assert_matches(got, expected)
    if not expected:
        assert "wrote 0 predictions" in output


def test_the_date_range_is_inclusive(project: dict[str, Any]) -> None:
    day = _days("NVDA")[2].isoformat()
    got, _ = _export(project["conf"], project["tmp"] / "d.parquet", "--start", day, "--end", day)
    assert got.height == 5 and got["as_of_date"].cast(str).unique().to_list() == [day]


def test_csv_and_parquet_hold_the_same_rows(project: dict[str, Any]) -> None:
    parquet, _ = _export(project["conf"], project["tmp"] / "p.parquet")
    csv = project["tmp"] / "p.CSV"
    invoke_ok("predictions", "--config", str(project["conf"]), "--output", str(csv))
    back = pl.read_csv(csv, schema=parquet.schema)
    assert back.equals(parquet)  # every float to its last bit, nulls as nulls
    assert csv.read_text().splitlines()[0].split(",") == parquet.columns


def test_a_log_made_before_intervals_opens_and_exports(tmp_path: Path) -> None:
    """A log file of issue 23 (no intervals column): exported as it is (no bound columns),
    given the column on that first open with its old rows null and its key, CHECK and
    STRICT as they were; a new row then keeps its bounds beside the old ones."""
    conf = make_project(tmp_path)
    store = DuckDBStore(tmp_path / "warehouse.duckdb")
    store.upsert(FileSource(SAMPLE / "NVDA.csv").load())
    store.close()
    log = tmp_path / "warehouse.log.sqlite"
    con = sqlite3.connect(log)
    con.executescript(OLD_DDL)
    old = log_rows(_out("NVDA", 1, MODELS["v2"], 0.01), MODELS["v2"], "score").drop("intervals")
    text = old.with_columns(
        pl.col("as_of_date").cast(str), pl.col("scored_at").dt.strftime("%Y-%m-%d %H:%M:%S%.6f")
    )
    con.executemany(f"INSERT INTO predictions VALUES ({', '.join('?' * 9)})", text.rows())
    con.commit()
    con.close()
    got, _ = _export(conf, tmp_path / "old.parquet")
    assert_matches(got, oracle(log))
    assert "lower_80" not in got.columns
    con = sqlite3.connect(log)
    info = con.execute("PRAGMA table_info(predictions)").fetchall()
    assert [c[1] for c in info] == [*LOG_COLUMNS, "intervals"]
    assert [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]] == [
        "model_name", "model_version", "ticker", "as_of_date", "horizon", "source"
    ]  # fmt: skip
    assert con.execute("SELECT count(*) FROM predictions WHERE intervals IS NULL").fetchone() == (
        6,
    )
    for bad in ("not json", b"{}"):  # the CHECK and STRICT refuse what is not JSON text
        with pytest.raises(sqlite3.IntegrityError):
            con.execute(
                "UPDATE predictions SET intervals = ? WHERE rowid = (SELECT min(rowid) FROM "
                "predictions)",
                [bad],
            )
    con.close()
    SQLiteLog(log).record(log_rows(_out("NVDA", 1, MODELS["v1"], 0.02), MODELS["v1"], "score"))
    got, _ = _export(conf, tmp_path / "both.parquet")
    assert_matches(got, oracle(log))
    assert got.filter(pl.col("model_version") == "2")["lower_80"].null_count() == 6


def test_many_processes_opening_an_old_log_add_the_column_once(tmp_path: Path) -> None:
    """Serving workers starting together on an old file: each connection checks again under
    the write lock, so one adds the column and none fails."""
    log = tmp_path / "w.log.sqlite"
    con = sqlite3.connect(log)
    con.executescript(OLD_DDL)
    con.close()
    logs, errors = [SQLiteLog(log) for _ in range(8)], list[BaseException]()
    barrier = threading.Barrier(len(logs))

    def open_it(each: SQLiteLog) -> None:
        barrier.wait()
        try:
            each.rows()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it, args=(each,)) for each in logs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    names = [row[1] for row in sqlite3.connect(log).execute("PRAGMA table_info(predictions)")]
    assert names.count("intervals") == 1
    for each in logs:
        each.close()


class Fixed:
    def predict(self, frame: Any) -> np.ndarray:
        return np.full(len(frame), 0.5)


def test_an_api_prediction_is_exported_with_the_bounds_it_answered(tmp_path: Path) -> None:
    """The service writes the bounds it serves into the log (the same `log_rows` as `score`
    and replay), and the export gives them back; with no warehouse on that host the rows
    are exported with realised unknown, and no warehouse is created."""
    conf = make_project(tmp_path)
    model = LoadedModel(Fixed(), "M", "4", warmup=10, horizon=1, run_id="run-4", intervals=CAL)
    bars = pl.read_csv(SAMPLE / "NVDA.csv").tail(30).with_columns(pl.lit("NVDA").alias("ticker"))
    log = SQLiteLog(tmp_path / "warehouse.log.sqlite")  # where `serve` writes, by data.warehouse
    client = TestClient(create_app(model, record=log))
    response = client.post("/predict", json={"bars": bars.to_dicts()})
    assert response.status_code == 200
    (answer,) = response.json()
    got, output = _export(conf, tmp_path / "api.csv")
    assert got.height == 1
    row = got.row(0, named=True)
    assert [row[c] for c in BOUNDS if c in row] == [answer[c] for c in BOUNDS if c in answer]
    assert answer["lower_80"] == pytest.approx(0.48) and row["realised"] is None
    assert "no warehouse yet: no realised return known" in output
    assert not (tmp_path / "warehouse.duckdb").exists()
    assert_matches(got, oracle(tmp_path / "warehouse.log.sqlite", prices=False))


def test_no_log_is_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    conf = make_project(tmp_path)
    args = ["predictions", "--config", str(conf), "--output", str(tmp_path / "x.parquet")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert f"no prediction log at {tmp_path / 'warehouse.log.sqlite'}" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]
    DuckDBStore(tmp_path / "warehouse.duckdb").upsert(FileSource(SAMPLE / "NVDA.csv").load())
    result = CliRunner().invoke(main, args)  # a warehouse, but nothing ever logged
    assert result.exit_code == 2 and "no prediction log at" in result.output
    assert (
        not (tmp_path / "warehouse.log.sqlite").exists() and not (tmp_path / "x.parquet").exists()
    )


def test_a_log_an_old_warehouse_still_keeps_is_moved_out_and_exported(tmp_path: Path) -> None:
    """A warehouse of a release before issue 23 keeps its log inside: the export opens the
    warehouse first (which moves the log to its own file), then exports it."""
    conf = make_project(tmp_path)
    rows = log_rows(_out("NVDA", 1, MODELS["v2"], 0.01), MODELS["v2"], "score").drop("intervals")
    path = tmp_path / "warehouse.duckdb"
    legacy_warehouse(path, rows)
    prices = (
        FileSource(SAMPLE / "NVDA.csv")
        .load()
        .frame.with_columns(
            pl.lit("NVDA.csv").alias("source"), pl.lit(dt.datetime(2026, 1, 1)).alias("loaded_at")
        )
    )
    with duckdb.connect(str(path)) as con:  # its prices, written as that release did
        con.register("incoming", prices.to_arrow())
        con.execute("INSERT INTO prices BY NAME SELECT * FROM incoming")
    assert not (tmp_path / "warehouse.log.sqlite").exists()
    got, _ = _export(conf, tmp_path / "moved.parquet")
    assert got.height == 6
    assert_matches(got, oracle(tmp_path / "warehouse.log.sqlite"))


@pytest.mark.slow  # a real MLflow registry (its sqlite store is created and migrated)
def test_an_alias_exports_the_version_it_names_now(project: dict[str, Any]) -> None:
    """models:/M@champion, models:/M/Latest and a stage name each resolve in the registry to
    one version, whose rows only are exported; an unknown alias is exit 2, no file written."""
    import mlflow

    from pipeline.tracking.store import ensure_store

    uri = f"sqlite:///{project['tmp'] / 'mlflow.db'}"
    ensure_store(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("M")
    for _ in range(2):
        client.create_model_version("M", source=str(project["tmp"] / "nowhere"))
    client.set_registered_model_alias("M", "champion", "1")
    expected = oracle(project["log"])
    for model_uri, version in (
        ("models:/M@champion", "1"),
        ("models:/M/Production", "1"),  # the stage's alias (tracking.yaml stage_aliases)
        ("models:/M/Latest", "2"),
    ):
        got, _ = _export(project["conf"], project["tmp"] / "a.parquet", "--model-uri", model_uri)
        assert_matches(
            got, [r for r in expected if r["model_version"] == version and r["model_name"] == "M"]
        )
    out = project["tmp"] / "none.parquet"
    args = ["predictions", "--config", str(project["conf"]), "--output", str(out)]
    result = CliRunner().invoke(main, [*args, "--model-uri", "models:/M@nope"])
    assert result.exit_code == 2 and "registered model 'M' has no alias 'nope'" in result.output
    assert not out.exists()


class Loader:
    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def load(self, model_uri: str) -> LoadedModel:
        return self.model


def test_score_logs_the_bounds_it_writes(conf_dir: Path, ridge_model: LoadedModel) -> None:
    """`score` logs each row's bounds with its prediction; the export gives back exactly the
    bounds `score` wrote to its own output file."""
    from pipeline.bootstrap import scratch_warehouse
    from pipeline.config import load_config
    from pipeline.serving.score import ScorePorts, score
    from pipeline.serving.sinks import ParquetSink

    tmp = conf_dir.parent
    model = dataclasses.replace(ridge_model, intervals=CAL)
    warehouse = DuckDBStore(tmp / "warehouse.duckdb")
    ports = ScorePorts(
        source=FileSource(SAMPLE / "NVDA.csv"),
        store=warehouse,
        loader=Loader(model),
        log=warehouse,
        workspace=scratch_warehouse,
    )
    scored = score(load_config(conf_dir), ports, ParquetSink(tmp / "scores.parquet")).frame
    warehouse.close()
    got, _ = _export(conf_dir, tmp / "export.parquet")
    assert got.select(*PREDICTION_COLUMNS, *BOUNDS[:2], *BOUNDS[4:]).equals(scored)
    assert_matches(got, oracle(tmp / "warehouse.log.sqlite"))
