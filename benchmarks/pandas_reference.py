"""Hand-written pandas version of a feature set, the baseline for the benchmark.

Written the way a quant would write it in plain pandas, without the feature engine: one
``groupby("ticker")`` on the (ticker, date)-sorted frame, then per-ticker ``shift``/``diff``,
``rolling(w).mean()/.std()/.skew()/.min()/.max()/.sum()`` and ``ewm(alpha, adjust=False,
min_periods=...).mean()`` (pandas' grouped, cythonised window paths, never a Python-level
``apply``). Columns that share a window are rolled together (``gb[[a, b]].rolling(w)``), each
grouped window result is aligned back on the row index with ``droplevel(0)``.

It follows ``pipeline.features.library`` definition by definition, with the same semantics:

* windows count rows and are missing (NaN) until they hold ``w`` non-missing values;
* ``rolling_std``/z-score use the sample std (ddof=1), Bollinger the population std (ddof=0),
  computed two-pass (``window_std``): pandas' online ``rolling().std()`` is not accurate enough
  on price levels (see there);
* recursive smoothers are seeded at the first non-missing row (``adjust=False``) and stay
  missing for ``convergence_rows(alpha)`` observations (``min_periods``); Wilder's smoothing
  (RSI, NATR) is ``alpha = 1 / n``, the EMA's ``alpha = 2 / (span + 1)``;
* MACD is relative (``EMA_fast / EMA_slow - 1``), NATR is ``100 * ATR / close``;
* beta is ``cov(r, r_bench) / var(r_bench)`` and corr Pearson's, over trailing windows of
  one-day log returns, with ``bench_close`` the benchmark's close on the same date.

The feature *parameters* (windows, spans, ...) come from the same ``FeaturesConfig`` the engine
is built from, so the two stay in step when ``conf/base/model.yaml`` changes; every family
except ``cross_section`` is implemented. Output: the sorted input plus one column per feature,
in ``build_feature_defs`` order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from pipeline.features.library import convergence_rows, span_alpha
from pipeline.features.spec import (
    BENCH_CLOSE,
    Bollinger,
    Calendar,
    Ewm,
    FeaturesConfig,
    HighLowRange,
    Lags,
    Macd,
    Market,
    Returns,
    Rolling,
    Stochastic,
    Windowed,
)

TICKER = "ticker"
DATE = "date"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x).replace(".", "p")


class _Panel:
    """The sorted frame, its one ``groupby`` and the base series, each computed once."""

    def __init__(self, prices: pd.DataFrame) -> None:
        self.df = prices.sort_values([TICKER, DATE], ignore_index=True)
        self.work = pd.DataFrame({TICKER: self.df[TICKER]})  # derived series, grouped as one
        # One groupby for everything: it keeps a reference to ``work``, so columns put there
        # later are grouped with the ticker codes computed once (the correctness test checks
        # the result against the engine, column by column).
        self._gb = self.work.groupby(TICKER, sort=False)
        self.close = self.df["close"]

    def col(self, name: str) -> pd.Series:
        """A price column or a derived series (``logret_1``, ``ret_1``), built once."""
        if name in self.df.columns:
            return self.df[name]
        if name not in self.work.columns:
            if name == "logret_1":
                self.put(name, np.log(self.close / self.shift("close", 1)))
            elif name == "ret_1":
                self.put(name, self.close / self.shift("close", 1) - 1.0)
            else:
                raise KeyError(name)
        return self.work[name]

    def put(self, name: str, values: pd.Series) -> str:
        """Store a derived series so that it can be grouped; returns its name."""
        self.work[name] = values
        return name

    def grouped(self, names: str | list[str]) -> Any:
        """The per-ticker groupby of one series (``str``) or several (``list``)."""
        for name in [names] if isinstance(names, str) else names:
            if name not in self.work.columns:
                self.work[name] = self.col(name)
        return self._gb[names]

    def shift(self, name: str, periods: int) -> pd.Series:
        return self.grouped(name).shift(periods)

    def diff(self, name: str) -> pd.Series:
        return self.grouped(name).diff(1)

    def rolling(self, names: tuple[str, ...], window: int, stat: str, **kw: int) -> pd.DataFrame:
        """``stat`` of each of ``names`` over a trailing ``window`` per ticker, row-aligned."""
        roll = self.grouped(list(names)).rolling(window)
        return getattr(roll, stat)(**kw).droplevel(0)

    def ewm(self, name: str, alpha: float) -> pd.Series:
        """Recursive mean seeded at the first valid row, missing until it has converged."""
        ew = self.grouped(name).ewm(alpha=alpha, adjust=False, min_periods=convergence_rows(alpha))
        return ew.mean().droplevel(0)


def _returns(p: _Panel, fam: Returns, kind: str) -> dict[str, pd.Series]:
    out = {}
    for w in fam.windows:
        ratio = p.close / p.shift("close", w)
        if kind == "log_return":
            out[f"logret_{w}"] = np.log(ratio)
        else:
            out[f"ret_{w}"] = ratio - 1.0
    return out


def _lags(p: _Panel, fam: Lags, kind: str) -> dict[str, pd.Series]:
    p.col(fam.of)
    return {f"lag_{fam.of}_{k}": p.shift(fam.of, k) for k in fam.lags}


_ROLLING_STAT = {
    "rolling_mean": "mean",
    "rolling_std": "std",
    "rolling_min": "min",
    "rolling_max": "max",
    "rolling_sum": "sum",
    "rolling_skew": "skew",
}


def _rolling(p: _Panel, fam: Rolling, kind: str) -> dict[str, pd.Series]:
    x = p.col(fam.of)
    out = {}
    for w in fam.windows:
        name = f"{kind}_{fam.of}_{w}"
        if kind in _ROLLING_STAT:
            out[name] = p.rolling((fam.of,), w, _ROLLING_STAT[kind])[fam.of]
        elif kind == "rolling_zscore":
            mean = p.rolling((fam.of,), w, "mean")[fam.of]
            std = p.rolling((fam.of,), w, "std")[fam.of]
            out[name] = (x - mean) / std
        elif kind == "dist_max":
            out[name] = x / p.rolling((fam.of,), w, "max")[fam.of] - 1.0
        elif kind == "dist_min":
            out[name] = x / p.rolling((fam.of,), w, "min")[fam.of] - 1.0
        else:
            raise NotImplementedError(kind)
    return out


def _ewm(p: _Panel, fam: Ewm, kind: str) -> dict[str, pd.Series]:
    x = p.col(fam.of)
    base = fam.of if kind == "ewm_mean" else p.put(f"__sq_{fam.of}", x * x)
    out = {}
    for s in fam.spans:
        mean = p.ewm(base, span_alpha(s))
        out[f"{kind}_{fam.of}_{s}"] = mean if kind == "ewm_mean" else np.sqrt(mean)
    return out


def _windowed(p: _Panel, fam: Windowed, kind: str) -> dict[str, pd.Series]:
    out = {}
    if kind == "rsi":
        delta = p.diff("close")
        p.put("__gain", delta.clip(lower=0.0))
        p.put("__loss", (-delta).clip(lower=0.0))
        for w in fam.windows:
            gain, loss = p.ewm("__gain", 1.0 / w), p.ewm("__loss", 1.0 / w)
            out[f"rsi_{w}"] = 100.0 * gain / (gain + loss)
    elif kind == "natr":
        high, low, prev = p.col("high"), p.col("low"), p.shift("close", 1)
        # max of the three ranges; on each ticker's first row (no previous close) high - low
        true_range = np.fmax(high - low, np.fmax((high - prev).abs(), (low - prev).abs()))
        p.put("__true_range", true_range)
        for w in fam.windows:
            out[f"natr_{w}"] = 100.0 * p.ewm("__true_range", 1.0 / w) / p.close
    elif kind == "obv_ratio":
        p.put("__signed_volume", np.sign(p.diff("close")) * p.col("volume"))
        for w in fam.windows:
            sums = p.rolling(("__signed_volume", "volume"), w, "sum")
            out[f"obv_ratio_{w}"] = sums["__signed_volume"] / sums["volume"]
    elif kind == "volume_ratio":
        for w in fam.windows:
            out[f"volume_ratio_{w}"] = p.col("volume") / p.rolling(("volume",), w, "mean")["volume"]
    else:
        raise NotImplementedError(kind)
    return out


def _macd(p: _Panel, fam: Macd, kind: str) -> dict[str, pd.Series]:
    f, s, g = fam.fast, fam.slow, fam.signal
    line = p.ewm("close", span_alpha(f)) / p.ewm("close", span_alpha(s)) - 1.0
    signal = p.ewm(p.put("__macd_line", line), span_alpha(g))
    return {
        f"macd_line_{f}_{s}": line,
        f"macd_signal_{f}_{s}_{g}": signal,
        f"macd_hist_{f}_{s}_{g}": line - signal,
    }


def window_std(x: pd.Series, mean: pd.Series, window: int, ddof: int) -> pd.Series:
    """Two-pass trailing std: sqrt(sum_j (x_{t-j} - mean_t)^2 / (window - ddof)).

    ``mean`` is the per-ticker rolling mean, missing until a ticker's window is full, so a
    window that would reach into the previous ticker is missing too. Needed for price
    *levels*: pandas' ``rolling().std()`` updates its sum of squares online (add the new row,
    remove the old one) and never recomputes it, so on a 5,000-day price series it drifts up
    to ~3e-7 relative from the exact std (measured; the engine is within ~3e-14). On returns,
    whose mean is small next to their spread, the online update is accurate and used as is.
    """
    xs, ms = x.to_numpy(), mean.to_numpy()
    squares = np.zeros_like(ms)
    for j in range(window):
        squares[j:] += (xs[: len(xs) - j] - ms[j:]) ** 2
    squares[: window - 1] = np.nan
    return pd.Series(np.sqrt(squares / (window - ddof)), index=x.index)


def _bollinger(p: _Panel, fam: Bollinger, kind: str) -> dict[str, pd.Series]:
    k, tag = fam.k, _fmt(fam.k)
    out = {}
    for w in fam.windows:
        mid = p.rolling(("close",), w, "mean")["close"]
        sd = window_std(p.close, mid, w, ddof=0)  # population std, as the bands use
        out[f"bb_pctb_{w}_{tag}"] = (p.close - (mid - k * sd)) / (2.0 * k * sd)
        out[f"bb_width_{w}_{tag}"] = 2.0 * k * sd / mid
    return out


def _stochastic(p: _Panel, fam: Stochastic, kind: str) -> dict[str, pd.Series]:
    out = {}
    for w in fam.windows:
        lowest = p.rolling(("low",), w, "min")["low"]
        highest = p.rolling(("high",), w, "max")["high"]
        stoch_k = 100.0 * (p.close - lowest) / (highest - lowest)
        name = p.put(f"stoch_k_{w}", stoch_k)
        out[name] = stoch_k
        out[f"stoch_d_{w}_{fam.smooth}"] = p.rolling((name,), fam.smooth, "mean")[name]
    return out


def _hl_range(p: _Panel, fam: HighLowRange, kind: str) -> dict[str, pd.Series]:
    if not fam.enabled:
        return {}
    return {"hl_range": (p.col("high") - p.col("low")) / p.close}


def _calendar(p: _Panel, fam: Calendar, kind: str) -> dict[str, pd.Series]:
    dt = p.col(DATE).dt
    fns: dict[str, Callable[[], pd.Series]] = {
        "day_of_week": lambda: dt.day_of_week + 1,  # ISO weekday, Monday = 1
        "month": lambda: dt.month,
        "days_to_month_end": lambda: dt.days_in_month - dt.day,
    }
    return {f"cal_{f}": fns[f]().astype(np.float64) for f in fam.fields}


def _market(p: _Panel, fam: Market, kind: str) -> dict[str, pd.Series]:
    bench = p.col(BENCH_CLOSE)
    r = p.col("logret_1")
    rb = p.put("__bench_logret_1", np.log(bench / p.shift(BENCH_CLOSE, 1)))
    p.put("__cross", r * p.work[rb])
    tag = fam.benchmark.lower()
    out = {}
    for w in fam.windows:
        # pandas' own Rolling.cov/corr formulas: E[xy] - E[x]E[y], rescaled to ddof=1
        means = p.rolling(("logret_1", rb, "__cross"), w, "mean")
        var = p.rolling(("logret_1", rb), w, "var")
        cov = (means["__cross"] - means["logret_1"] * means[rb]) * (w / (w - 1.0))
        out[f"beta_{tag}_{w}"] = cov / var[rb]
        out[f"corr_{tag}_{w}"] = cov / np.sqrt(var["logret_1"] * var[rb])
        out[f"excess_logret_{tag}_{w}"] = np.log(p.close / p.shift("close", w)) - np.log(
            bench / p.shift(BENCH_CLOSE, w)
        )
    return out


_FAMILIES: dict[type, Callable[..., dict[str, pd.Series]]] = {
    Returns: _returns,
    Lags: _lags,
    Rolling: _rolling,
    Ewm: _ewm,
    Windowed: _windowed,
    Macd: _macd,
    Bollinger: _bollinger,
    Stochastic: _stochastic,
    HighLowRange: _hl_range,
    Calendar: _calendar,
    Market: _market,
}


def pandas_features(
    prices: pd.DataFrame, cfg: FeaturesConfig, columns: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Sort by (ticker, date) and append the features ``cfg`` declares, computed per ticker.

    ``columns`` keeps only those features (the model's selection); default: all, in
    declaration order.
    """
    if cfg.cross_section is not None:
        raise NotImplementedError("cross_section is not part of the pandas reference")
    p = _Panel(prices)
    out: dict[str, pd.Series] = {}
    for kind, family in cfg.families():
        out.update(_FAMILIES[type(family)](p, family, kind))
    if columns is not None:
        out = {name: out[name] for name in columns}
    return p.df.assign(**out)
