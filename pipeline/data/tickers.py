"""One rule for ticker symbols, the same for files, the config and the API.

A ticker is normalised (surrounding whitespace stripped, upper-cased) and then must be 1 to
``MAX_TICKER_LENGTH`` characters of ``A-Z 0-9 . - ^ = _``: enough for every Yahoo symbol
(``BRK-B``, ``^GSPC``, ``EURUSD=X``, ``7203.T``), and nothing that can hide in a log or a
terminal (control characters, NUL, bidirectional overrides, other whitespace). ``nvda`` and
``NVDA `` are therefore the same ticker as ``NVDA``.

Leaf module: Polars only, so the contract, the readers and the API can all import it.
"""

from __future__ import annotations

import re

import polars as pl

MAX_TICKER_LENGTH = 32
ALLOWED = r"^[A-Z0-9.\-^=_]+$"
RULE = (
    f"1-{MAX_TICKER_LENGTH} characters of A-Z, 0-9 and . - ^ = _"
    " (case and surrounding spaces are ignored)"
)
_PATTERN = re.compile(ALLOWED)


def normalise_ticker(raw: str) -> str:
    """``raw`` stripped and upper-cased; ValueError naming the rule when it is not a ticker."""
    ticker = raw.strip().upper()
    if not 1 <= len(ticker) <= MAX_TICKER_LENGTH or not _PATTERN.match(ticker):
        shown = ascii(raw[:40]) + ("..." if len(raw) > 40 else "")
        raise ValueError(f"invalid ticker {shown}: a ticker is {RULE}")
    return ticker


def normalised(column: pl.Expr) -> pl.Expr:
    """The same normalisation as ``normalise_ticker`` as a Polars expression (no check)."""
    return column.str.strip_chars().str.to_uppercase()


def invalid(column: pl.Expr) -> pl.Expr:
    """True where a normalised ticker breaks the rule (null counts as invalid)."""
    length = column.str.len_chars()
    ok = column.str.contains(ALLOWED) & (length >= 1) & (length <= MAX_TICKER_LENGTH)
    return ok.not_() | column.is_null()
