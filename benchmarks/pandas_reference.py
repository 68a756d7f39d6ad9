"""Hand-written pandas version of the default feature set, the baseline for the benchmark.

Written the way a quant would write it in plain pandas, without the feature engine: per-ticker
``groupby`` + ``shift`` and ``groupby(...).rolling(w).mean()/.std()`` (pandas' grouped, cythonised
rolling path, not a Python-level ``apply``). It mirrors ``build_feature_defs(FeaturesConfig())``
column for column, in the same order, and with the same semantics: windows count rows, a window
is null (NaN) until it holds ``w`` non-missing values, std is the sample std (ddof=1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RETURN_WINDOWS = (1, 5, 20)
LAGS = (1, 2, 3, 4, 5)
ROLLING_WINDOWS = (5, 20)
ZSCORE_WINDOWS = (20,)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"logret_{w}" for w in RETURN_WINDOWS),
    *(f"lag_logret_1_{k}" for k in LAGS),
    *(f"rolling_mean_logret_1_{w}" for w in ROLLING_WINDOWS),
    *(f"rolling_std_logret_1_{w}" for w in ROLLING_WINDOWS),
    *(f"rolling_zscore_volume_{w}" for w in ZSCORE_WINDOWS),
    "hl_range",
)


def pandas_features(prices: pd.DataFrame) -> pd.DataFrame:
    """Sort by (ticker, date) and append the default feature columns, computed per ticker."""
    df = prices.sort_values(["ticker", "date"], ignore_index=True)
    ticker = df["ticker"]
    close = df["close"]
    by_ticker = df.groupby("ticker", sort=False)
    out: dict[str, pd.Series] = {}

    for w in RETURN_WINDOWS:
        out[f"logret_{w}"] = np.log(close / by_ticker["close"].shift(w))

    logret_1 = out["logret_1"].groupby(ticker, sort=False)
    for k in LAGS:
        out[f"lag_logret_1_{k}"] = logret_1.shift(k)
    # groupby().rolling() returns a (ticker, row) MultiIndex: drop the ticker level so the
    # result aligns back on the row index.
    for w in ROLLING_WINDOWS:
        out[f"rolling_mean_logret_1_{w}"] = logret_1.rolling(w).mean().droplevel(0)
    for w in ROLLING_WINDOWS:
        out[f"rolling_std_logret_1_{w}"] = logret_1.rolling(w).std().droplevel(0)

    volume = by_ticker["volume"]
    for w in ZSCORE_WINDOWS:
        mean = volume.rolling(w).mean().droplevel(0)
        std = volume.rolling(w).std().droplevel(0)
        out[f"rolling_zscore_volume_{w}"] = (df["volume"] - mean) / std

    out["hl_range"] = (df["high"] - df["low"]) / close
    return df.assign(**out)
