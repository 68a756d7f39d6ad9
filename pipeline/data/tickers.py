"""One rule for ticker symbols, the same for files, the config and the API.

A ticker is normalised (surrounding ASCII whitespace stripped, upper-cased) and then must be 1
to ``MAX_TICKER_LENGTH`` characters of ``A-Z 0-9 . - ^ = _``: enough for every Yahoo symbol
(``BRK-B``, ``^GSPC``, ``EURUSD=X``, ``7203.T``), and nothing that can hide in a log or a
terminal (control characters, NUL, bidirectional overrides, other whitespace). ``nvda`` and
``NVDA `` are therefore the same ticker as ``NVDA``.

The rule is checked on the text as written, before upper-casing: Unicode upper-casing maps
U+017F (long s) to ``S`` and U+0131 (dotless i) to ``I``, so a look-alike of ``SPY`` would
otherwise pass as ``SPY``. Only ASCII whitespace is stripped because Python's ``str.strip``
and Polars' ``strip_chars`` disagree on the rest (``\\x1f``, for one): Python and Polars
give the same answer for every string.

Leaf module: Polars only, so the contract, the readers and the API can all import it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import polars as pl

MAX_TICKER_LENGTH = 32
WHITESPACE = " \t\n\r\x0b\x0c"  # stripped around a ticker; ASCII only (see above)
_SPACE = r"[ \t\n\r\x0b\x0c]*"
_SYMBOL = rf"[A-Za-z0-9.\-^=_]{{1,{MAX_TICKER_LENGTH}}}"
ALLOWED = rf"^[A-Z0-9.\-^=_]{{1,{MAX_TICKER_LENGTH}}}$"
"""A normalised ticker."""
WRITTEN = rf"^{_SPACE}{_SYMBOL}{_SPACE}$"
"""A ticker as written (any case, surrounding ASCII whitespace); a normalised one matches too."""
RULE = (
    f"1-{MAX_TICKER_LENGTH} characters of A-Z, 0-9 and . - ^ = _"
    " (case and surrounding spaces are ignored)"
)
CONTRACT_RULE = f"ticker must be {RULE}"
"""The data contract's text for the rule (``pipeline.data.rules.VALID_TICKER``)."""
_WRITTEN = re.compile(WRITTEN[1:-1])  # for fullmatch: `$` would also match before a "\n"


def normalise_ticker(raw: str) -> str:
    """``raw`` stripped and upper-cased; ValueError naming the rule when it is not a ticker."""
    if not _WRITTEN.fullmatch(raw):
        shown = ascii(raw[:40]) + ("..." if len(raw) > 40 else "")
        raise ValueError(f"invalid ticker {shown}: a ticker is {RULE}")
    return raw.strip(WHITESPACE).upper()


def normalise_tickers(raw: Iterable[str]) -> tuple[str, ...]:
    """Each of ``raw`` normalised; ValueError for an invalid ticker or one listed twice."""
    tickers = tuple(normalise_ticker(t) for t in raw)
    twice = sorted({t for t in tickers if tickers.count(t) > 1})
    if twice:
        raise ValueError(f"ticker(s) {twice} listed more than once (case and spaces ignored)")
    return tickers


def normalised(column: pl.Expr) -> pl.Expr:
    """``normalise_ticker`` as a Polars expression, without raising: a value breaking the rule
    is only stripped (not upper-cased), so that ``invalid`` still finds it."""
    stripped = column.str.strip_chars(WHITESPACE)
    return (
        pl.when(stripped.str.contains(WRITTEN))
        .then(stripped.str.to_uppercase())
        .otherwise(stripped)
    )


def invalid(column: pl.Expr) -> pl.Expr:
    """True where a ticker, as written or normalised, breaks the rule (null counts as invalid).

    One regular expression, no copies: ~0.05 s on 2.5M rows.
    """
    return column.str.contains(WRITTEN).not_() | column.is_null()
