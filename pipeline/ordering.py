"""The panel's (ticker, date) order, reached with one sort on one integer key.

Every feature reads its ticker's rows in date order, so every path sorts the panel. Polars
sorts by a string and then a date column in ~0.45 s on 2.5M rows; packing the ticker's rank
and the date into one ``UInt64`` and sorting that takes ~0.12 s and gives the same order (the
rank orders strings exactly as the string sort does). Ties (duplicate keys, which the data
contract refuses) keep their input order, so the result is deterministic either way.
"""

from __future__ import annotations

import polars as pl

# Days since 1970 as Int32 (the contract's 1800-2199 fits) shifted to be non-negative.
_DATE_BITS = 32
_ORDER_KEY = pl.col("ticker").rank("dense").cast(pl.UInt64) * (1 << _DATE_BITS) + (
    pl.col("date").cast(pl.Int64) + (1 << (_DATE_BITS - 1))
).cast(pl.UInt64)


def by_ticker_date(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` sorted by (ticker, date), as ``frame.sort("ticker", "date")`` would be.

    For eager frames: in a lazy query Polars' own two-key sort is as fast (0.21 s) and the
    optimiser drops a repeated sort on the same keys, which it cannot do for this key.
    """
    # The flag matters as much as the order: `.over("ticker")` on a column known to be sorted
    # slices groups instead of hashing 2.5M strings (the engine ran 1.6x slower without it).
    return frame.sort(_ORDER_KEY, maintain_order=True).with_columns(pl.col("ticker").set_sorted())


def strictly_ordered(frame: pl.DataFrame) -> bool:
    """True if rows are in (ticker, date) order with no key twice (one cheap pass)."""
    if frame.height < 2:
        return True
    t, d = pl.col("ticker"), pl.col("date")
    later = (t > t.shift()) | ((t == t.shift()) & (d > d.shift()))
    return bool(frame.select(later.slice(1).fill_null(False).all()).item())


def unique_keys(frame: pl.DataFrame) -> bool:
    """True if no (ticker, date) is there twice: one pass when the frame is already in
    order (every source sorts its batch), a sort first otherwise (then repeats are adjacent)."""
    return strictly_ordered(frame) or strictly_ordered(by_ticker_date(frame))


def ordered(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` in (ticker, date) order, sorting only when it is not already."""
    return frame if strictly_ordered(frame) else by_ticker_date(frame)
