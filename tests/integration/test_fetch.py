"""yfinance source on recorded responses: shape, retries with backoff, offline, the fetch CLI.

Nothing here touches the network: ``yfinance.download`` itself is replaced by a guard.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pytest
import yfinance
from click.testing import CliRunner, Result
from support import SAMPLE
from yfinance.multi import reindex_dfs
from yfinance.utils import empty_df

import pipeline.data.yahoo as yahoo
from pipeline import bootstrap
from pipeline.cli import main
from pipeline.data.readers import FileSource
from pipeline.data.snapshots import content_sha256
from pipeline.data.yahoo import YFinanceSource
from pipeline.errors import DataError


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def guard(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"test reached the real yfinance.download{args}")

    monkeypatch.setattr(yfinance, "download", guard)


def _history(ticker: str, rows: int) -> pd.DataFrame:
    """What yfinance keeps per ticker (auto_adjust, daily, tz dropped): the sample's last rows."""
    tail = pl.read_csv(SAMPLE / f"{ticker}.csv", try_parse_dates=True).tail(rows).to_pandas()
    frame = tail.set_index(pd.DatetimeIndex(tail["date"], name="Date"))
    frame = frame.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    return frame.astype({"Volume": "int64"})


def _recorded(dfs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """yfinance.multi.download's own assembly (1.7): align, concat by ticker, (Price, Ticker)."""
    dfs = reindex_dfs(dict(dfs), True)
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    return data.sort_index(level=0, axis=1)  # yfinance sorts in place


def _offline(tickers: list[str]) -> pd.DataFrame:
    """What yf.download returns when Yahoo is unreachable: no rows, (Price, Ticker) columns."""
    return _recorded({t: empty_df() for t in tickers})


def _expected(rows: dict[str, int]) -> pl.DataFrame:
    parts = [FileSource(SAMPLE / f"{t}.csv").load().frame.tail(n) for t, n in rows.items()]
    return pl.concat(parts).sort("ticker", "date")


class Recorder:
    """A download stand-in replaying responses (the last one repeats) and recording calls."""

    def __init__(self, *responses: pd.DataFrame | Exception) -> None:
        self.responses = list(responses)
        self.calls: list[tuple[list[str], dict[str, Any]]] = []

    def __call__(self, tickers: list[str], **kwargs: Any) -> pd.DataFrame:
        self.calls.append((tickers, kwargs))
        response = self.responses[min(len(self.calls), len(self.responses)) - 1]
        if isinstance(response, Exception):
            raise response
        return response


PANEL = _recorded({"NVDA": _history("NVDA", 40), "SPY": _history("SPY", 60)})


def _source(download: Recorder, sleeps: list[float], **kwargs: Any) -> YFinanceSource:
    tickers = kwargs.pop("tickers", ("NVDA", "SPY"))
    return YFinanceSource(tickers, download=download, sleep=sleeps.append, **kwargs)


def test_recorded_frame_has_yfinance_shape_and_becomes_canonical() -> None:
    assert PANEL.columns.names == ["Price", "Ticker"] and PANEL.index.name == "Date"
    assert list(PANEL.columns.get_level_values(0).unique()) == [
        "Close",
        "High",
        "Low",
        "Open",
        "Volume",
    ]
    assert len(PANEL) == 60 and PANEL[("Close", "NVDA")].isna().sum() == 20
    download, sleeps = Recorder(PANEL), []
    batch = _source(download, sleeps).load()
    assert batch.frame.equals(_expected({"NVDA": 40, "SPY": 60}))
    assert batch.source == "yfinance" and batch.sha256 == content_sha256(batch.frame)
    assert sleeps == [] and len(download.calls) == 1
    tickers, kwargs = download.calls[0]
    assert tickers == ["NVDA", "SPY"]
    assert kwargs == {
        "start": None,
        "end": None,
        "interval": "1d",
        "auto_adjust": True,
        "group_by": "column",
        "progress": False,
        "threads": False,
        "timeout": 20.0,
        "multi_level_index": True,
        "period": "max",
    }


def test_raw_adjustment_and_start_date_are_passed_to_yahoo() -> None:
    download = Recorder(_recorded({"NVDA": _history("NVDA", 30)}))
    start = dt.date(2026, 8, 1)
    source = _source(download, [], tickers=("nvda",), start=start, adjustment="raw")
    assert source.load().frame.equals(_expected({"NVDA": 30}))
    kwargs = download.calls[0][1]
    assert kwargs["auto_adjust"] is False and kwargs["start"] == start
    assert kwargs["period"] is None


def test_recorded_frame_is_checked_against_the_contract() -> None:
    broken = _history("SPY", 30)
    broken.iloc[5, broken.columns.get_loc("High")] = broken["Close"].iloc[5] - 1
    download = Recorder(_recorded({"SPY": broken}))
    with pytest.raises(DataError, match=r"yfinance: column 'high': high must be >= max"):
        _source(download, [], tickers=("SPY",)).load()


@pytest.mark.parametrize(
    ("retries", "backoff", "waits"), [(3, 1.0, [1, 2, 4]), (2, 0.5, [0.5, 1.0]), (0, 1.0, [])]
)
def test_offline_frame_is_retried_with_backoff_then_explained(
    retries: int, backoff: float, waits: list[float]
) -> None:
    download, sleeps = Recorder(_offline(["NVDA", "SPY"])), []
    source = _source(download, sleeps, retries=retries, backoff_seconds=backoff)
    with pytest.raises(DataError) as err:
        source.load()
    assert sleeps == waits and len(download.calls) == retries + 1
    message = str(err.value)
    assert f"no data for ['NVDA', 'SPY'] after {retries + 1} attempt(s)" in message
    assert "--data" in message and "data/sample" in message


def test_transient_os_error_is_retried_once() -> None:
    download, sleeps = Recorder(OSError("curl: (6) Could not resolve host"), PANEL), []
    batch = _source(download, sleeps).load()
    assert sleeps == [1.0] and len(download.calls) == 2
    assert batch.tickers == ("NVDA", "SPY")


def test_missing_ticker_is_retried_then_reported() -> None:
    only_nvda = _recorded({"NVDA": _history("NVDA", 40)})
    download, sleeps = Recorder(only_nvda), []
    with pytest.raises(DataError, match=r"no data for \['SPY'\] after 4 attempt") as err:
        _source(download, sleeps).load()
    assert "NVDA" not in str(err.value) and sleeps == [1, 2, 4]
    download, sleeps = Recorder(only_nvda, PANEL), []
    assert _source(download, sleeps).load().tickers == ("NVDA", "SPY") and sleeps == [1]


def _fetch(conf_dir: Path, *extra: str) -> Result:
    return CliRunner().invoke(
        main, ["fetch", "--config", str(conf_dir), "--tickers", "nvda, spy", *extra]
    )


def _inject(monkeypatch: pytest.MonkeyPatch, download: Recorder) -> list[float]:
    """Build the CLI's source from config as usual, with the recorded download and no sleeping."""
    sleeps: list[float] = []
    real: Callable[..., YFinanceSource] = bootstrap.yfinance_source

    def build(cfg: Any, tickers: tuple[str, ...]) -> YFinanceSource:
        s = real(cfg, tickers)
        args = (s.start, s.end, s.interval, s.adjustment, s.retries, s.backoff, s.timeout)
        return YFinanceSource(s.tickers, *args, s.policy, download, sleeps.append)

    monkeypatch.setattr(bootstrap, "yfinance_source", build)
    return sleeps


def _prices(tmp_path: Path) -> list[tuple[Any, ...]]:
    warehouse = tmp_path / "warehouse.duckdb"
    if not warehouse.exists():
        return []
    con = duckdb.connect(str(warehouse))
    try:
        return con.sql(
            "SELECT ticker, count(*), min(source) FROM prices GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()


def _assert_offline_cli(result: Result, tmp_path: Path) -> None:
    assert result.exit_code not in (0, 1), result.output  # a typed error, not a crash
    assert "no data for ['NVDA', 'SPY'] after 4 attempt(s)" in result.output
    assert "--data" in result.output and "data/sample" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "data" / "raw").exists()
    assert _prices(tmp_path) == []


def test_cli_fetch_offline_fails_and_writes_nothing(
    conf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download = Recorder(_offline(["NVDA", "SPY"]))
    sleeps = _inject(monkeypatch, download)
    _assert_offline_cli(_fetch(conf_dir), tmp_path)
    assert sleeps == [1, 2, 4] and len(download.calls) == 4


def test_cli_fetch_offline_through_the_module_level_downloader(
    conf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download = Recorder(_offline(["NVDA", "SPY"]))
    monkeypatch.setattr(yahoo, "_yf_download", download)
    # The backoff is the source's constant: skip its waits without touching time.sleep itself.
    monkeypatch.setattr(yahoo, "time", SimpleNamespace(sleep=lambda _seconds: None))
    _assert_offline_cli(_fetch(conf_dir), tmp_path)
    assert len(download.calls) == 4


def test_cli_fetch_offline_creates_no_warehouse_file(
    conf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _inject(monkeypatch, Recorder(_offline(["NVDA", "SPY"])))
    assert _fetch(conf_dir).exit_code != 0
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_cli_fetch_writes_snapshots_and_loads_the_warehouse(
    conf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download = Recorder(PANEL)
    _inject(monkeypatch, download)
    result = _fetch(conf_dir, "--start", "2026-06-01")
    assert result.exit_code == 0, result.output
    assert download.calls[0][1]["start"] == dt.date(2026, 6, 1)
    raw = tmp_path / "data" / "raw"
    entries = [json.loads(x) for x in (raw / "manifest.jsonl").read_text().splitlines()]
    assert [(e["ticker"], e["source"], e["rows"]) for e in entries] == [
        ("NVDA", "yfinance", 40),
        ("SPY", "yfinance", 60),
    ]
    params = {"start": "2026-06-01", "end": None, "interval": "1d", "adjustment": "adjusted"}
    for entry, ticker in zip(entries, ("NVDA", "SPY"), strict=True):
        assert entry["id"].startswith(f"yfinance/{ticker}/") and entry["id"] in result.output
        assert entry["params"] == {"tickers": ["NVDA", "SPY"], **params}
        frame = pl.read_parquet(raw / entry["path"])
        assert frame.equals(_expected({ticker: entry["rows"]}))
    assert _prices(tmp_path) == [("NVDA", 40, "yfinance"), ("SPY", 60, "yfinance")]
    again = _fetch(conf_dir, "--start", "2026-06-01")  # same data: no new snapshot
    assert again.exit_code == 0 and len(list(raw.rglob("*.parquet"))) == 2
