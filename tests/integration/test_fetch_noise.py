"""Offline `fetch` shows our one error, not the libraries' chatter (which goes to DEBUG).

The fake downloader talks the way yfinance 1.7 and pandas do when Yahoo is unreachable:
print to stdout and stderr, log on the yfinance/urllib3/peewee loggers, raise warnings,
and write straight to file descriptor 2 as C and Rust code does.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
import yfinance
from click.testing import CliRunner, Result
from pandas.errors import Pandas4Warning
from support import overlay
from yfinance.exceptions import YFRateLimitError
from yfinance.utils import empty_df

import pipeline.data.yahoo as yahoo
from pipeline.cli import main

OUR_ERROR = (
    "error: yfinance returned no data for ['NVDA'] after {n} attempt(s) (empty result): "
    "Yahoo is unreachable or the ticker is unknown. Use --data PATH with a CSV/parquet file, "
    "or the shipped history in data/sample/"
)
NOISE = ("Cookie/crumb", "Failed to get ticker", "Pandas4Warning", "urllib3", "peewee", "fd2")


def _noisy_offline(tickers: list[str], **kwargs: Any) -> pd.DataFrame:
    print("\r[*********************100%***********************]  1 of 1 completed")
    print("Cookie/crumb fetch failed (DNSError), continuing without crumb", file=sys.stderr)
    logging.getLogger("yfinance").error(
        "Failed to get ticker 'NVDA' reason: curl: (6) Could not resolve host"
    )
    logging.getLogger("urllib3.connectionpool").warning("urllib3 retrying connection")
    logging.getLogger("peewee").warning("peewee cache locked")
    warnings.warn("The inplace keyword in DataFrame.rename is deprecated", Pandas4Warning, 2)
    warnings.warn("yfinance FutureWarning", FutureWarning, 2)
    os.write(2, b"fd2: written below Python\n")
    frame = pd.concat({t: empty_df() for t in tickers}, axis=1, names=["Ticker", "Price"])
    return frame.swaplevel(0, 1, axis=1)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def guard(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("test reached the real yfinance.download")

    monkeypatch.setattr(yfinance, "download", guard)
    monkeypatch.setattr(yahoo, "_yf_download", _noisy_offline)
    # The retry backoff is the source's constant: skip its waits, not time.sleep everywhere.
    monkeypatch.setattr(yahoo, "time", SimpleNamespace(sleep=lambda _seconds: None))


def _fetch(conf_dir: Path, *before: str, retries: int = 0) -> Result:
    overlay(conf_dir, "data", fetch={"retries": retries})
    args = [*before, "fetch", "--config", str(conf_dir), "--tickers", "NVDA"]
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("retries", [0, 2])
def test_offline_fetch_prints_only_our_error(
    conf_dir: Path, capfd: pytest.CaptureFixture[str], retries: int
) -> None:
    result = _fetch(conf_dir, retries=retries)
    assert result.exit_code == 2
    assert result.output == OUR_ERROR.format(n=retries + 1) + "\n"
    leaked = capfd.readouterr()
    assert leaked.out == "" and leaked.err == ""  # nothing below Python either


def test_the_chatter_is_kept_at_debug(conf_dir: Path) -> None:
    result = _fetch(conf_dir, "--log-level", "DEBUG")
    assert result.exit_code == 2
    debug = [line for line in result.output.splitlines() if "DEBUG" in line]
    for marker in NOISE:
        assert any(marker in line for line in debug), marker
    assert result.output.rstrip().endswith(OUR_ERROR.format(n=1))


def test_a_yfinance_exception_is_retried_then_explained(
    conf_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def rate_limited(tickers: list[str], **kwargs: Any) -> pd.DataFrame:
        calls.append(tickers)
        raise YFRateLimitError()

    monkeypatch.setattr(yahoo, "_yf_download", rate_limited)
    result = _fetch(conf_dir, retries=1)
    assert result.exit_code == 2 and len(calls) == 2, result.output
    assert result.output.startswith("error: yfinance returned no data for ['NVDA'] after 2")
    assert "YFRateLimitError: Too Many Requests" in result.output
