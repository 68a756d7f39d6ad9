"""yfinance price source: real downloads, with retries and a typed error when Yahoo is away.

``yf.download`` does not raise when it cannot reach Yahoo: it prints to stderr and returns an
empty frame. So an empty frame, or a ticker missing from the result, is treated as "source
unavailable" and retried with exponential backoff before a DataError names the tickers and
points to ``--data`` or the shipped sample. The adjustment policy is explicit:
``adjusted`` asks Yahoo for split- and dividend-adjusted OHLC (``auto_adjust=True``), ``raw``
for unadjusted prices.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import polars as pl

from pipeline.data.external import first_line, quiet
from pipeline.data.snapshots import content_sha256
from pipeline.data.validation import ContractPolicy, check_contract
from pipeline.domain import PRICE_COLUMNS, PriceBatch
from pipeline.errors import DataError
from pipeline.ordering import by_ticker_date

log = logging.getLogger(__name__)
FIELDS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}
Downloader = Callable[..., Any]


def _yf_download(*args: Any, **kwargs: Any) -> Any:
    import yfinance as yf

    return yf.download(*args, **kwargs)


def frame_from_yfinance(raw: pd.DataFrame | None, tickers: tuple[str, ...]) -> pl.DataFrame:
    """Long canonical frame from yfinance's (field, ticker) multi-level column frame."""
    if raw is None or raw.empty:
        return pl.DataFrame(
            schema={
                c: (pl.String if c == "ticker" else pl.Date if c == "date" else pl.Float64)
                for c in PRICE_COLUMNS
            }
        )
    parts = []
    for ticker in tickers:
        if not isinstance(raw.columns, pd.MultiIndex):
            sub = raw
        elif ticker in raw.columns.get_level_values(-1):
            sub = pd.DataFrame(raw.xs(ticker, axis=1, level=-1))
        else:
            continue
        missing = [f for f in FIELDS if f not in sub.columns]
        if missing:
            raise DataError(f"yfinance result for {ticker} lacks column(s) {missing}")
        block = sub[list(FIELDS)].rename(columns=FIELDS).dropna(how="all")
        if block.empty:
            continue
        block.index = pd.to_datetime(block.index).tz_localize(None).normalize()
        frame = pl.from_pandas(block.reset_index(names="date")).with_columns(
            pl.col("date").cast(pl.Date),
            pl.lit(ticker).alias("ticker"),
            pl.col("open", "high", "low", "close", "volume").cast(pl.Float64),
        )
        parts.append(frame.select(PRICE_COLUMNS))
    if not parts:
        return frame_from_yfinance(None, tickers)
    return by_ticker_date(pl.concat(parts))


def _source_failure(exc: Exception) -> bool:
    """True for errors of the download itself: curl/DNS errors (OSError subclasses) and
    yfinance's own exceptions (e.g. YFRateLimitError); worth a retry, then a DataError."""
    origin = type(exc).__module__.split(".")[0]
    return isinstance(exc, OSError) or origin in {"yfinance", "curl_cffi", "requests"}


class YFinanceSource:
    """A PriceSource that downloads daily bars through yfinance."""

    def __init__(
        self,
        tickers: tuple[str, ...],
        start: dt.date | None = None,
        end: dt.date | None = None,
        interval: str = "1d",
        adjustment: str = "adjusted",
        retries: int = 3,
        backoff_seconds: float = 1.0,
        timeout_seconds: float = 20.0,
        policy: ContractPolicy | None = None,
        download: Downloader | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not tickers:
            raise DataError("fetch: no tickers given (e.g. --tickers NVDA,SPY)")
        self.tickers = tuple(t.upper() for t in tickers)
        self.params = {
            "tickers": list(self.tickers),
            "start": str(start) if start else None,
            "end": str(end) if end else None,
            "interval": interval,
            "adjustment": adjustment,
        }
        self.start, self.end, self.interval = start, end, interval
        self.adjustment, self.retries, self.backoff = adjustment, retries, backoff_seconds
        self.timeout, self.policy = timeout_seconds, policy or ContractPolicy()
        self._download, self._sleep = download, sleep

    def _once(self) -> pl.DataFrame:
        # Looked up at call time, so the module-level function can be patched in tests.
        download = self._download or _yf_download
        # Offline, yfinance prints a dozen lines per attempt (its logger, stderr, pandas
        # deprecation warnings): the user gets our one error instead, the chatter is DEBUG.
        with quiet(log):
            raw = download(
                list(self.tickers),
                start=self.start,
                end=self.end,
                interval=self.interval,
                auto_adjust=self.adjustment == "adjusted",
                group_by="column",
                progress=False,
                threads=False,
                timeout=self.timeout,
                multi_level_index=True,
                period=None if self.start else "max",
            )
        return frame_from_yfinance(raw, self.tickers)

    def load(self) -> PriceBatch:
        frame, missing, error = None, list(self.tickers), ""
        for attempt in range(self.retries + 1):
            try:
                frame = self._once()
                missing = [
                    t for t in self.tickers if t not in set(frame.get_column("ticker").to_list())
                ]
                if not missing:
                    break
                error = "empty result"
            except Exception as exc:
                if not _source_failure(exc):
                    raise
                error = f"{type(exc).__name__}: {first_line(exc)}"
            if attempt < self.retries:
                wait = self.backoff * 2**attempt
                # DEBUG: the final error says how many attempts were made.
                log.debug(
                    "yfinance: %s for %s; retry %d/%d in %.1fs",
                    error,
                    missing,
                    attempt + 1,
                    self.retries,
                    wait,
                )
                (self._sleep or time.sleep)(wait)
        if frame is None or missing:
            raise DataError(
                f"yfinance returned no data for {missing} after {self.retries + 1} attempt(s) "
                f"({error}): Yahoo is unreachable or the ticker is unknown. Use --data PATH "
                "with a CSV/parquet file, or the shipped history in data/sample/"
            )
        checked = frame.with_row_index("row")
        report = check_contract(checked, "yfinance", self.policy)
        report.raise_for_errors()
        report.log_warnings()
        return PriceBatch(frame=frame, source="yfinance", sha256=content_sha256(frame))
