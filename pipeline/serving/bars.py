"""The body of ``POST /predict``, turned into the canonical price frame the model reads.

Bytes are parsed by pydantic (JSON types only: no numbers as text, no booleans as numbers, no
unknown fields), bounded by the request limits, then held to the SAME data contract as files
(``check_contract``, the rules of ``pipeline.data.rules``), so a request breaking a rule gets
the rule's usual message, located at ``bars[i]``, the index in the request. JSON's NaN and
Infinity parse as floats and are refused by the contract's finiteness rule; absurdly large
prices by its range rule. Tickers follow the one ticker rule (``pipeline.data.tickers``): they
are normalised (``nvda `` is ``NVDA``) and one that breaks the rule (a NUL, a bidirectional
override, 10,000 characters) is refused with 422, before it reaches a log line or a metric.
The contract's warnings (a suspicious price jump, a gap) do not block a request: each reaches
the client in the ``warnings`` of its ticker's predictions.

Bars are validated in chunks because pydantic holds the GIL while it works: one 16 MiB list
would freeze the event loop (and ``/health``) for the whole validation, a chunk only briefly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import polars as pl
from fastapi import HTTPException
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from pipeline.data.tickers import MAX_TICKER_LENGTH, RULE, invalid, normalised
from pipeline.data.validation import (
    ContractPolicy,
    ContractReport,
    Violation,
    check_contract,
    describe_rows,
    list_item,
)
from pipeline.errors import DataError
from pipeline.settings import ServingConfig

SOURCE = "request"  # how messages name the input, where a file's path would be
MAX_ERRORS_SHOWN = 5
CHUNK = 2000  # bars validated per GIL-holding pydantic call (a few milliseconds)
COLUMNS: dict[str, Any] = {
    "ticker": pl.String,
    "date": pl.Date,
    "open": pl.Float64,
    "high": pl.Float64,
    "low": pl.Float64,
    "close": pl.Float64,
    "volume": pl.Float64,
    "bench_close": pl.Float64,
}


def _text(value: Any) -> Any:
    # Without this, lax date parsing would read a number such as 20240131 as epoch seconds.
    if not isinstance(value, str):
        raise ValueError("a date must be text such as 2024-01-31")
    return value


# For the OpenAPI document only (the rule itself is applied after parsing, with its message).
TICKER_PATTERN = rf"^\s*[A-Za-z0-9.\-^=_]{{1,{MAX_TICKER_LENGTH}}}\s*$"
SHOWN_CHARS = 40  # of an invalid ticker, in a message
TICKER_RULE = f"ticker must be {RULE}"  # the contract's wording for files


class Bar(BaseModel):
    """One daily bar; values are checked by the data contract, not here."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ticker: Annotated[
        str, Field(description=f"a ticker is {RULE}", json_schema_extra={"pattern": TICKER_PATTERN})
    ]
    date: Annotated[dt.date, BeforeValidator(_text), Field(strict=False)]
    # Optional: a model trained on close-only data reads the close alone. A model that reads
    # one needs it on every bar (a 422 names it); left out of some bars only, the contract
    # refuses those bars.
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float
    volume: float | None = None
    bench_close: float | None = None


class _Envelope(BaseModel):
    """The request: ``{"bars": [Bar, ...]}``, bars of one or more tickers in any order."""

    model_config = ConfigDict(extra="forbid", strict=True)

    bars: list[Any] = Field(min_length=1)


class PredictRequest(BaseModel):
    """The body of ``POST /predict`` as the OpenAPI document publishes it (parsed as
    ``_Envelope`` then ``Bar`` by bar, in chunks)."""

    model_config = ConfigDict(extra="forbid")

    bars: list[Bar] = Field(
        min_length=1,
        description="daily bars of one or more tickers, in any order: at least the served "
        "models' longest warm-up + 1 per ticker",
    )


@dataclass(frozen=True)
class Bars:
    """A parsed request: the canonical frame, and the contract's warnings per ticker."""

    frame: pl.DataFrame
    warnings: dict[str, list[str]] = field(default_factory=dict)


_BARS = TypeAdapter(list[Bar])


def _where(loc: Sequence[int | str]) -> str:
    """('bars', 3, 'high') -> 'bars[3].high'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "body"


def _invalid(exc: ValidationError, offset: int | None = None) -> HTTPException:
    """422 listing the first errors; ``offset`` is the index of a chunk's first bar."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    lines = []
    for e in errors[:MAX_ERRORS_SHOWN]:
        loc = e["loc"] if offset is None else ("bars", int(e["loc"][0]) + offset, *e["loc"][1:])
        # Inputs are never echoed back: they may be NaN, which JSON responses cannot carry.
        lines.append(f"{SOURCE}: {_where(loc)}: {e['msg']}")
    if len(errors) > MAX_ERRORS_SHOWN:
        lines.append(f"(+{len(errors) - MAX_ERRORS_SHOWN} more)")
    return HTTPException(422, "\n".join(lines))


def _check_breadth(frame: pl.DataFrame, limits: ServingConfig) -> None:
    counts = frame.group_by("ticker").len()
    if counts.height > limits.max_tickers:
        raise HTTPException(
            422,
            f"{SOURCE}: {counts.height} tickers; at most {limits.max_tickers} per request "
            "(serving.max_tickers)",
        )
    over = counts.filter(pl.col("len") > limits.max_bars_per_ticker).sort("ticker")
    if over.height:
        shown = dict(over.head(MAX_ERRORS_SHOWN).iter_rows())
        raise HTTPException(
            422,
            f"{SOURCE}: at most {limits.max_bars_per_ticker} bars per ticker "
            f"(serving.max_bars_per_ticker); got {shown}",
        )


def _validate(body: bytes) -> list[Bar]:
    try:
        data = from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        raise HTTPException(400, f"{SOURCE}: body is not valid JSON: {exc}") from exc
    try:
        raw = _Envelope.model_validate(data).bars
    except ValidationError as exc:
        raise _invalid(exc) from exc
    bars: list[Bar] = []
    for start in range(0, len(raw), CHUNK):
        try:
            bars += _BARS.validate_python(raw[start : start + CHUNK])
        except ValidationError as exc:
            raise _invalid(exc, start) from exc
    return bars


def _normalise_tickers(frame: pl.DataFrame) -> pl.DataFrame:
    """Tickers normalised (``nvda `` is ``NVDA``), or 422 naming the rule and the first bars
    whose ticker breaks it, worded as the contract words it for files (an empty ticker is
    left to the contract's own "must not be empty" rule, as files leave it)."""
    frame = frame.with_columns(normalised(pl.col("ticker")))
    ticker = pl.col("ticker")
    bad = frame.filter(invalid(ticker) & (ticker.str.len_chars() > 0)).select("row", "ticker")
    if bad.height:
        # repr() in the message escapes a NUL or a bidirectional override; cut, never whole.
        shown = bad.head(MAX_ERRORS_SHOWN)
        values = shown["ticker"].str.slice(0, SHOWN_CHARS)
        where = describe_rows(shown["row"], values, list_item("bars"), total=bad.height)
        rule = Violation(TICKER_RULE, "ticker", bad.height, where, "error")
        raise HTTPException(422, rule.describe(SOURCE))
    return frame


def _warnings_by_ticker(
    frame: pl.DataFrame, report: ContractReport, policy: ContractPolicy | None
) -> dict[str, list[str]]:
    """The contract's warnings about each ticker's bars, as the client reads them.

    The report counts every ticker's rows together; only when it warns at all (rarely: the
    hot path pays nothing) is each ticker's part checked again, to tell whose bars they are.
    """
    if not report.warnings:
        return {}
    found: dict[str, list[str]] = {}
    for (ticker,), bars in frame.partition_by("ticker", as_dict=True).items():
        own = check_contract(bars, SOURCE, policy, list_item("bars"))
        if own.warnings:
            found[str(ticker)] = [v.describe(SOURCE) for v in own.warnings]
    return found


def parse_bars(body: bytes, limits: ServingConfig, policy: ContractPolicy | None = None) -> Bars:
    """Canonical columns (plus ``bench_close``) sorted by ticker and date, or an HTTPException;
    with the contract's warnings per ticker.

    The frame keeps ``row``, each bar's index in the request, for messages.
    """
    bars = _validate(body)
    frame = pl.DataFrame(
        {name: [getattr(b, name) for b in bars] for name in COLUMNS}, schema=COLUMNS
    ).with_row_index("row")
    # Before counting tickers: `nvda` and `NVDA ` are one ticker, `NVDA\x00` none. The
    # contract holds files to the same rule; checked here too, before the breadth limits.
    frame = _normalise_tickers(frame)
    _check_breadth(frame, limits)
    # Order does not matter in a request; sorting first leaves duplicates as the only way to
    # break the contract's "strictly increasing dates" rule.
    frame = frame.sort("ticker", "date", maintain_order=True)
    report = check_contract(frame, SOURCE, policy, list_item("bars"))
    try:
        report.raise_for_errors()
    except DataError as exc:
        raise HTTPException(422, str(exc)) from exc
    report.log_warnings()
    return Bars(frame, _warnings_by_ticker(frame, report, policy))
