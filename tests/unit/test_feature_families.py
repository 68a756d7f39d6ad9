"""The families added after the first six: oracles, three ways, warm-ups and edge cases.

Windowed families are checked against DuckDB SQL window functions, recursive ones (EWM,
Wilder, MACD) against plain Python loops seeded like ``ewm_mean(adjust=False)``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from functools import partial

import duckdb
import numpy as np
import polars as pl
import pytest

from pipeline.features import library as lib
from pipeline.features.engine import add_features
from pipeline.features.spec import Ewm, FeatureDef, FeaturesConfig, build_feature_defs

OLD = ("log_return", "lag", "rolling_mean", "rolling_std", "rolling_zscore", "hl_range")
# fmt: off
NEW = FeaturesConfig.model_validate({
    **dict.fromkeys(OLD),  # the first six families are covered by test_features.py
    "rolling_min": {"of": "close", "windows": [10, 60]},
    "rolling_max": {"of": "logret_1", "windows": [20]},
    "rolling_sum": {"of": "volume", "windows": [5]},
    "rolling_skew": {"of": "logret_1", "windows": [20, 60]},
    "ewm_mean": {"of": "close", "spans": [10]}, "ewm_vol": {"of": "logret_1", "spans": [10, 30]},
    "rsi": {"windows": [5, 14]}, "macd": {"fast": 12, "slow": 26, "signal": 9},
    "bollinger": {"windows": [20], "k": 2.5}, "natr": {"windows": [14]},
    "stochastic": {"windows": [14], "smooth": 3}, "obv_ratio": {"windows": [20]},
    "dist_max": {"of": "close", "windows": [60]}, "dist_min": {"of": "close", "windows": [20]},
    "volume_ratio": {"windows": [5, 20]},
    "calendar": {"fields": ["day_of_week", "month", "days_to_month_end"]},
})
# fmt: on
DEFS = build_feature_defs(NEW)
Arrays = dict[str, np.ndarray]


# --- oracles: DuckDB window functions ------------------------------------------------------

_BY = "PARTITION BY ticker ORDER BY date"
_BASE = (
    "WITH b AS (SELECT *, ln(close / lag(close) OVER w) AS logret_1, "
    "sign(close - lag(close) OVER w) * volume AS signed FROM prices_in "
    f"WINDOW w AS ({_BY})) "
)


def _sql(value: str, src: str | None, *params: float) -> tuple[str, list[float]]:
    """``value`` per row; with ``src``, null unless the $1-row window holds $1 values of it."""
    if src is None:
        return _BASE + f"SELECT ticker, date, {value} AS v FROM b ORDER BY ticker, date", []
    query = (
        _BASE + f"SELECT ticker, date, CASE WHEN count({src}) OVER r = $1 THEN {value} END AS v "
        f"FROM b WINDOW r AS ({_BY} ROWS BETWEEN $1 - 1 PRECEDING AND CURRENT ROW) "
        "ORDER BY ticker, date"
    )
    return query, list(params)


_SD = "stddev_pop(close) OVER r"  # Bollinger bands use the population std
_K = "100 * (close - min(low) OVER r) / (max(high) OVER r - min(low) OVER r)"
_STOCH_D = (  # %D: the mean of the last $2 values of %K
    f"WITH k AS (SELECT ticker, date, v AS k FROM ({_sql(_K, 'close')[0]})) "
    "SELECT ticker, date, CASE WHEN count(k) OVER s = $2 THEN avg(k) OVER s END AS v FROM k "
    f"WINDOW s AS ({_BY} ROWS BETWEEN $2 - 1 PRECEDING AND CURRENT ROW) ORDER BY ticker, date"
)
SQL: dict[str, tuple[str, list[float]]] = {
    "rolling_min_close_10": _sql("min(close) OVER r", "close", 10),
    "rolling_min_close_60": _sql("min(close) OVER r", "close", 60),
    "rolling_max_logret_1_20": _sql("max(logret_1) OVER r", "logret_1", 20),
    "rolling_sum_volume_5": _sql("sum(volume) OVER r", "volume", 5),
    "rolling_skew_logret_1_20": _sql("skewness(logret_1) OVER r", "logret_1", 20),
    "rolling_skew_logret_1_60": _sql("skewness(logret_1) OVER r", "logret_1", 60),
    "dist_max_close_60": _sql("close / max(close) OVER r - 1", "close", 60),
    "dist_min_close_20": _sql("close / min(close) OVER r - 1", "close", 20),
    "volume_ratio_5": _sql("volume / avg(volume) OVER r", "volume", 5),
    "volume_ratio_20": _sql("volume / avg(volume) OVER r", "volume", 20),
    "bb_pctb_20_2p5": _sql(
        f"(close - avg(close) OVER r + $2*{_SD}) / (2*$2*{_SD})", "close", 20, 2.5
    ),
    "bb_width_20_2p5": _sql(f"2 * $2 * {_SD} / avg(close) OVER r", "close", 20, 2.5),
    "stoch_k_14": _sql(_K, "close", 14),
    "stoch_d_14_3": (_STOCH_D, [14, 3]),
    "obv_ratio_20": _sql("sum(signed) OVER r / sum(volume) OVER r", "signed", 20),
    "cal_day_of_week": _sql("isodow(date)::DOUBLE", None),
    "cal_month": _sql("month(date)::DOUBLE", None),
    "cal_days_to_month_end": _sql("date_diff('day', date, last_day(date))::DOUBLE", None),
}


# --- oracles: plain loops ------------------------------------------------------------------


def conv(alpha: float) -> int:
    """Rows until the seed weight (1 - alpha)^n drops below 1e-8."""
    return math.ceil(math.log(1e-8) / math.log(1.0 - alpha))


def ewm_loop(x: np.ndarray, alpha: float, min_samples: int | None = None) -> np.ndarray:
    """y_0 = first non-NaN x, y_t = a x_t + (1 - a) y_{t-1}; NaN until conv(alpha) inputs."""
    out, y, seen = np.full(len(x), np.nan), 0.0, 0
    min_samples = conv(alpha) if min_samples is None else min_samples
    for i, v in enumerate(x):
        if np.isnan(v):
            assert seen == 0, "only leading gaps are expected"
            continue
        y = v if seen == 0 else alpha * v + (1.0 - alpha) * y
        seen += 1
        if seen >= min_samples:
            out[i] = y
    return out


def prev(x: np.ndarray) -> np.ndarray:
    return np.concatenate([[np.nan], x[:-1]])


def rsi_loop(a: Arrays, w: int, min_samples: int | None = None) -> np.ndarray:
    delta = a["close"] - prev(a["close"])
    gain = ewm_loop(np.maximum(delta, 0.0), 1 / w, min_samples)  # keeps the leading NaN
    loss = ewm_loop(np.maximum(-delta, 0.0), 1 / w, min_samples)
    return 100 * gain / (gain + loss)


def natr_loop(a: Arrays, w: int) -> np.ndarray:
    h, lo, c = a["high"], a["low"], a["close"]
    tr = np.fmax.reduce([h - lo, abs(h - prev(c)), abs(lo - prev(c))])  # h - lo on row 0
    return 100 * ewm_loop(tr, 1 / w) / c


def macd_loop(a: Arrays, part: str) -> np.ndarray:
    ema = {s: ewm_loop(a["close"], 2 / (s + 1)) for s in (12, 26)}
    line = ema[12] / ema[26] - 1
    signal = ewm_loop(line, 2 / 10)
    return {"line": line, "signal": signal, "hist": line - signal}[part]


def ewm_vol_loop(a: Arrays, span: int) -> np.ndarray:
    """RiskMetrics: the square root of the EMA of squared log returns."""
    return np.sqrt(ewm_loop(np.log(a["close"] / prev(a["close"])) ** 2, 2 / (span + 1)))


LOOPS: dict[str, Callable[[Arrays], np.ndarray]] = {
    "ewm_mean_close_10": lambda a: ewm_loop(a["close"], 2 / 11),
    **{f"ewm_vol_logret_1_{s}": partial(ewm_vol_loop, span=s) for s in (10, 30)},
    **{f"rsi_{w}": partial(rsi_loop, w=w) for w in (5, 14)},
    "natr_14": lambda a: natr_loop(a, 14),
    "macd_line_12_26": lambda a: macd_loop(a, "line"),
    "macd_signal_12_26_9": lambda a: macd_loop(a, "signal"),
    "macd_hist_12_26_9": lambda a: macd_loop(a, "hist"),
}


def oracle(con: duckdb.DuckDBPyConnection, prices: pl.DataFrame, name: str) -> pl.Series:
    """The reference column for ``name``, rows ordered by (ticker, date)."""
    prices = prices.sort("ticker", "date")
    if name in LOOPS:
        parts = prices.partition_by("ticker", maintain_order=True)
        cols = [LOOPS[name]({c: p[c].to_numpy() for c in p.columns}) for p in parts]
        return pl.Series(name, np.concatenate(cols), nan_to_null=True)
    con.register("prices_in", prices.to_arrow())
    try:
        res = pl.from_arrow(con.sql(SQL[name][0], params=SQL[name][1]).to_arrow_table())
        assert isinstance(res, pl.DataFrame)
        assert res.select("ticker", "date").equals(prices.select("ticker", "date"))
        return res.get_column("v").alias(name)
    finally:
        con.unregister("prices_in")


def assert_same(ours: pl.Series, ref: pl.Series) -> None:
    assert ours.is_null().equals(ref.is_null()), f"{ours.name}: null positions differ"
    assert ours.is_nan().equals(ref.is_nan()), f"{ours.name}: NaN positions differ"
    ok = ours.is_not_null() & ours.is_not_nan()
    a, b = ours.filter(ok).to_numpy(), ref.filter(ok).to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=ours.name)


def test_oracles_cover_every_new_feature() -> None:
    assert not set(SQL) & set(LOOPS)
    assert sorted([*SQL, *LOOPS]) == sorted(d.name for d in DEFS)


def test_duckdb_skewness_is_the_sample_adjusted_g1(con: duckdb.DuckDBPyConnection) -> None:
    x = np.array([1.0, 2.0, 3.0, 10.0, -4.0, 0.5])
    n, d = len(x), x - x.mean()
    g1 = (d**3).mean() / (d**2).mean() ** 1.5
    got = con.sql("SELECT skewness(v) FROM unnest($1) AS t(v)", params=[x.tolist()]).fetchall()
    assert got[0][0] == pytest.approx(math.sqrt(n * (n - 1)) / (n - 2) * g1, rel=1e-12)
    polars = pl.Series(x).rolling_skew(n, bias=False)[-1]
    assert polars == pytest.approx(got[0][0], rel=1e-12)


@pytest.mark.parametrize("tickers", [("NVDA",), ("NVDA", "SPY", "QQQ")], ids=["nvda", "panel"])
@pytest.mark.parametrize("d", DEFS, ids=lambda d: d.name)
def test_matches_oracle(
    con: duckdb.DuckDBPyConnection, panel: pl.DataFrame, tickers: tuple[str, ...], d: FeatureDef
) -> None:
    prices = panel.filter(pl.col("ticker").is_in(tickers))
    ours = add_features(prices, [d]).get_column(d.name)
    assert ours.null_count() < ours.len()
    assert_same(ours, oracle(con, prices, d.name))


def test_textbook_rsi_agrees_after_the_warmup(nvda: pl.DataFrame) -> None:
    """Seeded with the SMA of the first n gains and losses, Wilder's RSI converges to ours."""
    n, close = 14, nvda.get_column("close").to_numpy()
    delta = np.diff(close)
    gain, loss = np.maximum(delta, 0.0), np.maximum(-delta, 0.0)
    textbook = np.full(len(close), np.nan)
    g, lo = gain[:n].mean(), loss[:n].mean()
    textbook[n] = 100 * g / (g + lo)
    for i in range(n, len(delta)):
        g, lo = (g * (n - 1) + gain[i]) / n, (lo * (n - 1) + loss[i]) / n
        textbook[i + 1] = 100 * g / (g + lo)
    d = next(d for d in DEFS if d.name == "rsi_14")
    ours = add_features(nvda, [d]).get_column(d.name).to_numpy()
    rel = np.abs(ours - textbook) / textbook
    assert d.warmup == conv(1 / n) == 249
    assert np.nanmax(rel[d.warmup :]) < 1e-6
    # without the warm-up, the two seeds visibly disagree
    unwarmed = rsi_loop({"close": close}, n, min_samples=1)
    assert np.max(np.abs(unwarmed - textbook)[n : 4 * n] / textbook[n : 4 * n]) > 1e-3


@pytest.mark.parametrize("d", DEFS, ids=lambda d: d.name)
def test_warmup_is_index_of_first_value(nvda: pl.DataFrame, d: FeatureDef) -> None:
    assert nvda.null_count().sum_horizontal().item() == 0
    col = add_features(nvda, [d]).get_column(d.name)
    valid = (col.is_not_null() & col.is_not_nan()).arg_true()
    assert valid.len() == nvda.height - d.warmup  # and valid from there on
    assert valid[0] == d.warmup


def test_convergence_rows_pinned() -> None:
    assert [lib.convergence_rows(a) for a in (1 / 14, 2 / 11, 2 / 27, 2 / 10)] == [249, 92, 240, 83]
    alpha = lib.span_alpha(26)
    n = lib.convergence_rows(alpha)
    assert (1 - alpha) ** n < lib.RECURSIVE_TOLERANCE <= (1 - alpha) ** (n - 1)


# --- three ways ----------------------------------------------------------------------------

COLUMNS = ("ticker", "date", "open", "high", "low", "close", "volume")


def bits(s: pl.Series) -> np.ndarray:
    return s.cast(pl.Float64).to_numpy().view(np.int64)


@pytest.mark.parametrize("d", DEFS, ids=lambda d: d.name)
def test_identical_three_ways(panel: pl.DataFrame, d: FeatureDef) -> None:
    frame = panel.sort("ticker", "date")
    expr = d.expr.over("ticker").alias("f")
    ways = [
        pl.DataFrame([frame.get_column(c) for c in COLUMNS]).select(expr).get_column("f"),
        frame.with_columns(expr).get_column("f"),
        frame.lazy().with_columns(expr).collect().get_column("f"),
        add_features(panel.lazy(), [d]).collect().get_column(d.name).alias("f"),
    ]
    assert ways[0].null_count() < frame.height
    for other in ways[1:]:
        assert ways[0].equals(other)
        assert np.array_equal(bits(ways[0]), bits(other))


# --- edge cases ----------------------------------------------------------------------------


def constant_prices(n: int) -> pl.DataFrame:
    days = [dt.date(2024, 1, 1) + dt.timedelta(i) for i in range(n)]  # from Monday 1 January
    ohlcv = {"open": 10.0, "high": 10.5, "low": 9.5, "close": 10.0, "volume": 1.0e6}
    return pl.DataFrame({"ticker": "C", "date": days, **{k: [v] * n for k, v in ohlcv.items()}})


# fmt: off
# prefix: value on close 10, high 10.5, low 9.5, volume 1e6; NaN where the code divides 0 by 0
CONSTANT = {
    "rolling_min_close": 10.0, "rolling_max_logret_1": 0.0, "rolling_sum_volume_5": 5e6,
    "rolling_skew": math.nan, "ewm_mean_close": 10.0, "ewm_vol": 0.0, "macd": 0.0,
    "rsi": math.nan,  # 100 * 0 / (0 + 0)
    "bb_pctb": math.nan, "bb_width": 0.0,  # zero std: (close - lower) / 0 and 0 / close
    "natr_14": 10.0,  # a true range of 1 on a close of 10
    "stoch": 50.0, "obv_ratio": 0.0, "dist_": 0.0, "volume_ratio": 1.0,
}
# fmt: on


def calendar(day: dt.date, name: str) -> float:
    """Calendar fields from the standard library, on every day of the week."""
    month_end = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1) - dt.timedelta(1)
    fields = {"day_of_week": day.isoweekday(), "month": day.month}
    return float(fields.get(name[4:], (month_end - day).days))


@pytest.mark.parametrize("d", DEFS, ids=lambda d: d.name)
def test_constant_prices(d: FeatureDef) -> None:
    prices = constant_prices(400)
    col = add_features(prices, [d]).get_column(d.name)
    assert col.head(d.warmup).null_count() == d.warmup
    valid = col.slice(d.warmup)
    if d.name.startswith("cal_"):
        expected = [calendar(day, d.name) for day in prices.get_column("date")]
        assert col.to_list() == expected
        return
    value = next(v for k, v in CONSTANT.items() if d.name.startswith(k))
    if math.isnan(value):  # undefined on a flat price (0 / 0): null, never NaN or inf
        assert valid.null_count() == valid.len()
    else:
        assert valid.null_count() == 0
        np.testing.assert_allclose(valid.to_numpy(), value, rtol=1e-12, atol=1e-15)


def test_single_row_is_null_except_calendar() -> None:
    for out in (
        add_features(constant_prices(1), DEFS),
        add_features(constant_prices(1).lazy(), DEFS).collect(),
    ):
        row = out.row(0, named=True)
        for d in DEFS:
            assert (row[d.name] is None) == (d.warmup > 0), d.name
        assert (row["cal_day_of_week"], row["cal_days_to_month_end"]) == (1.0, 30.0)


@pytest.mark.parametrize("d", DEFS, ids=lambda d: d.name)
def test_gap_of_missing_days_counts_rows(
    con: duckdb.DuckDBPyConnection, nvda: pl.DataFrame, d: FeatureDef
) -> None:
    idx = pl.int_range(pl.len())
    gapped = nvda.filter(~(idx.is_between(1000, 1029) | idx.is_in([1100, 1102])))
    assert gapped.height == nvda.height - 32
    out = add_features(gapped, [d]).get_column(d.name)
    assert_same(out, oracle(con, gapped, d.name))
    # right after the gap, the value is not the one computed without the gap
    full = add_features(nvda, [d]).filter(pl.col("date") == gapped.item(1000, "date"))
    if not d.name.startswith("cal_"):
        assert full.item(0, d.name) != out[1000]


@pytest.mark.parametrize("d", DEFS, ids=lambda d: d.name)
def test_ticker_shorter_than_window(panel: pl.DataFrame, d: FeatureDef) -> None:
    n = 10 if d.warmup > 10 else max(d.warmup, 1)
    short = panel.filter(pl.col("ticker") == "SPY").head(n).with_columns(ticker=pl.lit("AAA"))
    nvda = panel.filter(pl.col("ticker") == "NVDA")
    out = add_features(pl.concat([nvda, short]), [d])
    mine = out.filter(pl.col("ticker") == "AAA").get_column(d.name)
    assert mine.len() == n
    assert mine.null_count() == min(n, d.warmup)
    assert mine.equals(add_features(short, [d]).get_column(d.name))
    assert out.filter(pl.col("ticker") == "NVDA").equals(add_features(nvda, [d]))


def test_span_of_one_row_is_the_input_itself(nvda: pl.DataFrame) -> None:
    ewm = Ewm(of="close", spans=(1,))
    (d,) = build_feature_defs(FeaturesConfig(**dict.fromkeys(OLD), ewm_mean=ewm))
    assert d.warmup == 0  # a = 1: no memory, y_t = x_t from the first row
    assert add_features(nvda, [d]).get_column(d.name).equals(nvda["close"].alias(d.name))
