"""`stockpipe folds` and `stockpipe features` through the CLI: the manifest's invariants."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner, Result
from support import SAMPLE, overlay

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.data.readers import FileSource
from pipeline.features.columns import feature_columns
from pipeline.features.spec import build_feature_defs, total_warmup

FOLD_KEYS = {
    "fold",
    "train_start",
    "train_end",
    "test_start",
    "test_end",
    "train_rows",
    "test_rows",
}
TICKERS = ("NVDA", "SPY", "QQQ")


def _invoke(*args: str) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _folds(conf: Path, *extra: str) -> dict[str, Any]:
    out = _invoke("folds", "--config", str(conf), "--format", "json", *extra).stdout
    return json.loads(out)


def _calendar(*tickers: str) -> list[dt.date]:
    """Sorted union of trading dates of the sample files: the panel's calendar."""
    dates: set[dt.date] = set()
    for t in tickers:
        dates |= set(FileSource(SAMPLE / f"{t}.csv").load().frame["date"].to_list())
    return sorted(dates)


def _day(doc: dict[str, Any], key: str) -> dt.date:
    return dt.date.fromisoformat(doc[key])


def _warmup(conf: Path) -> int:
    """Rows of each ticker before its first usable one (the shipped set's warm-up)."""
    model = load_config(conf).model
    columns = feature_columns(model)
    return total_warmup([d for d in build_feature_defs(model.features) if d.name in columns])


@pytest.fixture
def panel(tmp_path: Path) -> Path:
    """A long parquet with a ticker column holding NVDA, SPY and QQQ."""
    frames = [FileSource(SAMPLE / f"{t}.csv").load().frame for t in TICKERS]
    path = tmp_path / "panel.parquet"
    pl.concat(frames).write_parquet(path)
    return path


def test_json_manifest_schema_and_stable_hash(conf_dir: Path) -> None:
    first, second = _folds(conf_dir), _folds(conf_dir)
    assert set(first) == {"folds_hash", "folds"}
    assert first == second  # same data, same config: same manifest and hash
    digest = first["folds_hash"]
    assert isinstance(digest, str) and len(digest) == 16 and int(digest, 16) >= 0
    cfg = load_config(conf_dir)
    assert [f["fold"] for f in first["folds"]] == list(range(cfg.training.folds.n_folds))
    for fold in first["folds"]:
        assert set(fold) == FOLD_KEYS
        for key in ("train_start", "train_end", "test_start", "test_end"):
            _day(fold, key)  # ISO dates
        assert isinstance(fold["train_rows"], int) and isinstance(fold["test_rows"], int)


def test_hash_changes_with_test_size_and_table_prints_it(conf_dir: Path) -> None:
    before = _folds(conf_dir)["folds_hash"]
    table = _invoke("folds", "--config", str(conf_dir)).stdout
    assert f"hash {before}" in table and "test_start" in table
    overlay(conf_dir, "training", folds={"test_size": 200})
    after = _folds(conf_dir)
    assert after["folds_hash"] != before
    assert all(f["test_rows"] == 200 for f in after["folds"])
    assert f"hash {after['folds_hash']}" in _invoke("folds", "--config", str(conf_dir)).stdout


@pytest.mark.parametrize(
    ("folds", "horizon"),
    [
        ({}, 1),
        ({"purge": 5, "embargo": 3, "n_folds": 3, "test_size": 120}, 1),
        ({"purge": 5, "n_folds": 4, "test_size": 60}, 5),
        ({"scheme": "sliding", "max_train_size": 1000, "n_folds": 3, "test_size": 100}, 1),
    ],
    ids=["default", "purge-embargo", "horizon-5", "sliding"],
)
def test_manifest_invariants(conf_dir: Path, folds: dict[str, Any], horizon: int) -> None:
    if folds:
        overlay(conf_dir, "training", folds=folds)
    if horizon != 1:
        overlay(conf_dir, "model", target={"horizon": horizon})
    f = load_config(conf_dir).training.folds
    calendar = _calendar("NVDA")
    idx = {d: i for i, d in enumerate(calendar)}
    labelled = calendar[:-horizon]  # the last `horizon` days have no label yet
    warmup = _warmup(conf_dir)
    assert warmup > 250  # the shipped set: the manifest must not count these rows
    manifest = _folds(conf_dir)["folds"]
    assert len(manifest) == f.n_folds

    tested: list[dt.date] = []
    for k, fold in enumerate(manifest):
        tr0, tr1 = idx[_day(fold, "train_start")], idx[_day(fold, "train_end")]
        te0, te1 = idx[_day(fold, "test_start")], idx[_day(fold, "test_end")]
        assert tr0 <= tr1 < te0 <= te1  # train strictly before test: no overlap
        assert tr1 + f.purge < te0  # no training label (t, t + horizon] reaches a test day
        assert te0 - tr1 - 1 == f.purge + f.embargo
        assert te1 - te0 + 1 == f.test_size
        # one ticker: rows are trading days
        assert fold["test_rows"] == f.test_size and fold["train_rows"] == tr1 - tr0 + 1
        if f.scheme == "sliding":
            assert f.max_train_size is not None and tr1 - tr0 + 1 == f.max_train_size
        else:
            assert tr0 == warmup  # the first row past the warm-up, not the file's first row
        if k:
            prev_end = idx[_day(manifest[k - 1], "test_end")]
            assert te0 == prev_end + 1  # contiguous, non-overlapping: step == test_size
        tested += calendar[te0 : te1 + 1]
    assert tested == labelled[-f.n_folds * f.test_size :]
    assert len(set(tested)) == len(tested)


def test_step_larger_than_test_size_leaves_gaps(conf_dir: Path) -> None:
    test_size, step, n_folds = 100, 130, 4
    overlay(conf_dir, "training", folds={"test_size": test_size, "step": step, "n_folds": n_folds})
    calendar = _calendar("NVDA")
    idx = {d: i for i, d in enumerate(calendar)}
    manifest = _folds(conf_dir)["folds"]
    starts = [idx[_day(f, "test_start")] for f in manifest]
    ends = [idx[_day(f, "test_end")] for f in manifest]
    assert [e - s + 1 for s, e in zip(starts, ends, strict=True)] == [test_size] * n_folds
    assert [b - a for a, b in itertools.pairwise(starts)] == [step] * (n_folds - 1)
    gaps = [s - e - 1 for e, s in zip(ends[:-1], starts[1:], strict=True)]
    assert gaps == [step - test_size] * (n_folds - 1)
    assert ends[-1] == len(calendar) - 2  # the last labelled day (horizon 1)
    for fold in manifest:  # purge still holds for every fold
        assert idx[_day(fold, "train_end")] + 1 < idx[_day(fold, "test_start")]


def test_panel_folds_share_one_calendar(conf_dir: Path, panel: Path) -> None:
    single = _folds(conf_dir)
    doc = _folds(conf_dir, "--data", str(panel))
    f = load_config(conf_dir).training.folds
    calendar = _calendar(*TICKERS)
    assert doc["folds_hash"] != single["folds_hash"]
    rows = pl.read_parquet(panel)
    first_test = _day(doc["folds"][0], "test_start")
    per_ticker = rows.filter(pl.col("date") >= first_test).group_by("ticker").agg(pl.len())
    # precondition: the three tickers trade on exactly the same days over the tested period
    tested_days = [d for d in calendar if d >= first_test]
    assert set(per_ticker["len"].to_list()) == {len(tested_days)}
    # Rows the model can use: each ticker's rows past its own warm-up.
    usable = rows.sort("ticker", "date").filter(
        pl.int_range(pl.len()).over("ticker") >= _warmup(conf_dir)
    )
    assert doc["folds"][0]["train_start"] == str(usable["date"].min())
    for fold, one in zip(doc["folds"], single["folds"], strict=True):
        # same dates as the single-ticker manifest, three rows per date
        assert {k: fold[k] for k in ("test_start", "test_end", "train_end")} == {
            k: one[k] for k in ("test_start", "test_end", "train_end")
        }
        assert fold["test_rows"] == len(TICKERS) * f.test_size
        lo, hi = _day(fold, "train_start"), _day(fold, "train_end")
        assert fold["train_rows"] == usable.filter(pl.col("date").is_between(lo, hi)).height


@pytest.mark.parametrize("use_panel", [False, True], ids=["nvda", "panel"])
def test_features_writes_what_the_model_sees(
    conf_dir: Path, panel: Path, tmp_path: Path, use_panel: bool
) -> None:
    out = tmp_path / "features.parquet"
    extra = ("--data", str(panel)) if use_panel else ()
    result = _invoke("features", "--config", str(conf_dir), "--output", str(out), *extra)
    assert str(out) in result.stdout
    frame = pl.read_parquet(out)
    cfg = load_config(conf_dir)
    assert frame.columns == ["ticker", "date", *feature_columns(cfg.model), "target"]
    inputs = pl.read_parquet(panel) if use_panel else FileSource(SAMPLE / "NVDA.csv").load().frame
    assert frame.height == inputs.height  # one row per input row, warm-up rows included
    assert (
        frame.select("ticker", "date")
        .sort("ticker", "date")
        .equals(inputs.select("ticker", "date").sort("ticker", "date"))
    )
    assert frame.schema["date"] == pl.Date
    nvda = frame.filter(pl.col("ticker") == "NVDA").sort("date")
    close = inputs.filter(pl.col("ticker") == "NVDA").sort("date")["close"].to_list()
    target = nvda["target"].to_list()
    assert target[-1] is None  # the last day's forward return is unknown
    for i in (0, 100, len(close) - 2):
        assert target[i] == pytest.approx(math.log(close[i + 1] / close[i]), abs=1e-12)


def test_features_of_a_shorter_file_ignore_rows_loaded_before(
    conf_dir: Path, tmp_path: Path
) -> None:
    short = tmp_path / "NVDA.csv"  # same ticker, only the first 3000 days
    short.write_text("\n".join((SAMPLE / "NVDA.csv").read_text().splitlines()[:3001]) + "\n")
    expected = FileSource(short).load().frame
    _invoke("features", "--config", str(conf_dir), "--output", str(tmp_path / "full.parquet"))
    out = tmp_path / "short.parquet"
    _invoke("features", "--config", str(conf_dir), "--data", str(short), "--output", str(out))
    frame = pl.read_parquet(out)
    assert frame["date"].max() == expected["date"].max()
    assert frame.height == expected.height  # one row per input row
