"""No look-ahead: features at or before a cut do not depend on any row after it.

Also: no window crosses tickers, and features computed once on the full history equal features
computed on a truncated history (what lets training compute features once for all folds).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
from support import ALL_FAMILIES, with_bench

from pipeline.features.engine import TARGET, add_features, add_target
from pipeline.features.spec import (
    BENCH_CLOSE,
    FeaturesConfig,
    Lags,
    Returns,
    Rolling,
    build_feature_defs,
    total_warmup,
)
from pipeline.model.transformer import PolarsFeatures
from pipeline.training.dataset import build_training_set

OTHER_SOURCES = FeaturesConfig(
    log_return=Returns(windows=(3, 63)),
    simple_return=Returns(windows=(2, 252)),
    lag=Lags(of="ret_1", lags=(1, 7)),
    rolling_mean=Rolling(of="volume", windows=(3, 30)),
    rolling_std=Rolling(of="close", windows=(2, 40)),
    rolling_zscore=Rolling(of="ret_1", windows=(10, 126)),
)
CONFIGS = [
    pytest.param(ALL_FAMILIES, id="all_families"),
    pytest.param(OTHER_SOURCES, id="other"),
    pytest.param(ALL_FAMILIES.model_copy(update={"dtype": "float32"}), id="all_families_float32"),
]
CUTS = (0, 3, 20, 1500, 6000, 6959)  # row positions in NVDA (6962 rows)


# The shared sample bars with the benchmark's close joined by date, as the warehouse serves them.
@pytest.fixture(scope="module")
def nvda(nvda: pl.DataFrame) -> pl.DataFrame:
    return with_bench(nvda)


@pytest.fixture(scope="module")
def panel(panel: pl.DataFrame) -> pl.DataFrame:
    return with_bench(panel)


def perturb_after(prices: pl.DataFrame, cut: dt.date, seed: int) -> pl.DataFrame:
    """Replace every row after ``cut`` with random positive, internally consistent OHLCV.

    The benchmark's close is replaced too, with one random value per date.
    """
    head, tail = prices.filter(pl.col("date") <= cut), prices.filter(pl.col("date") > cut)
    rng = np.random.default_rng(seed)
    n = tail.height
    open_, close = rng.uniform(0.01, 1000.0, n), rng.uniform(0.01, 1000.0, n)
    high = np.maximum(open_, close) * rng.uniform(1.0, 1.2, n)
    low = np.minimum(open_, close) * rng.uniform(0.8, 1.0, n)
    tail = tail.with_columns(
        open=pl.Series(open_),
        high=pl.Series(high),
        low=pl.Series(low),
        close=pl.Series(close),
        volume=pl.Series(rng.uniform(1.0, 1e10, n)),
    )
    if BENCH_CLOSE in tail.columns:
        dates = tail.get_column("date").unique().sort()
        bench = pl.DataFrame({"date": dates, BENCH_CLOSE: rng.uniform(1.0, 500.0, dates.len())})
        tail = tail.drop(BENCH_CLOSE).join(bench, on="date", maintain_order="left")
    return pl.concat([head, tail.select(prices.columns)])


def moves_with_prices(name: str) -> bool:
    """Whether the value depends on prices at all (calendar features depend on the date only)."""
    return not name.startswith("cal_")


def bits(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).view(np.int64)


def assert_bit_identical(a: pl.Series, b: pl.Series) -> None:
    assert a.equals(b), a.name
    assert np.array_equal(bits(a.to_numpy()), bits(b.to_numpy())), a.name


# --- 5. leakage ---------------------------------------------------------------------------
def test_all_families_config_enables_every_family() -> None:
    """A family added to FeaturesConfig must be added to ALL_FAMILIES to be leak-tested."""
    assert all(getattr(ALL_FAMILIES, k) is not None for k in FeaturesConfig.model_fields)
    partitions = {d.partition for d in build_feature_defs(ALL_FAMILIES)}
    assert partitions == {"ticker", "date"}


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("cut_row", CUTS)
def test_features_at_or_before_cut_ignore_the_future(
    nvda: pl.DataFrame, cfg: FeaturesConfig, cut_row: int
) -> None:
    defs = build_feature_defs(cfg)
    cut = nvda.item(cut_row, "date")
    perturbed = perturb_after(nvda, cut, seed=cut_row)
    assert perturbed.height == nvda.height
    for col in ("close", BENCH_CLOSE):
        assert (perturbed[col] != nvda[col]).sum() == nvda.height - cut_row - 1
    clean = add_features(nvda.lazy(), defs).collect()
    dirty = add_features(perturbed.lazy(), defs).collect()
    for d in defs:
        assert_bit_identical(clean[d.name].head(cut_row + 1), dirty[d.name].head(cut_row + 1))
        # the perturbation is visible right after the cut (the comparison above is not vacuous);
        # on one ticker, a cross-sectional rank is always 1 and a z-score always null
        after = cut_row + 1 + d.warmup
        if moves_with_prices(d.name) and d.partition == "ticker" and after < nvda.height:
            assert clean.item(after, d.name) != dirty.item(after, d.name), d.name


@pytest.mark.parametrize("cut", [dt.date(1999, 6, 1), dt.date(2010, 1, 4), dt.date(2026, 9, 1)])
def test_panel_features_at_or_before_cut_ignore_the_future(
    panel: pl.DataFrame, cut: dt.date
) -> None:
    """Cross-sectional and market features too: every ticker and the benchmark change."""
    defs = build_feature_defs(ALL_FAMILIES)
    perturbed = perturb_after(panel, cut, seed=cut.year)
    clean = add_features(panel.lazy(), defs).collect()
    dirty = add_features(perturbed.lazy(), defs).collect()
    before, after = pl.col("date") <= cut, pl.col("date") > cut
    assert clean.select("ticker", "date").equals(dirty.select("ticker", "date"))
    assert clean.filter(after).height > 0
    for d in defs:
        assert_bit_identical(clean.filter(before)[d.name], dirty.filter(before)[d.name])
        if moves_with_prices(d.name):
            assert not clean.filter(after)[d.name].equals(dirty.filter(after)[d.name]), d.name


@pytest.mark.parametrize("horizon", [1, 5])
@pytest.mark.parametrize("cut_row", CUTS[:-1])
def test_target_is_the_only_forward_looking_column(
    nvda: pl.DataFrame, cut_row: int, horizon: int
) -> None:
    perturbed = perturb_after(nvda, nvda.item(cut_row, "date"), seed=cut_row)
    clean = add_target(nvda, horizon).get_column(TARGET)
    dirty = add_target(perturbed, horizon).get_column(TARGET)
    assert clean[cut_row] != dirty[cut_row]  # the label at the cut reads rows after it
    keep = max(cut_row + 1 - horizon, 0)  # labels whose window ends at or before the cut
    assert_bit_identical(clean.head(keep), dirty.head(keep))
    assert not clean.slice(keep, horizon).equals(dirty.slice(keep, horizon))


@pytest.mark.parametrize("cut_row", [20, 3000, 6900])
def test_transformer_rows_before_cut_ignore_the_future(nvda: pl.DataFrame, cut_row: int) -> None:
    pf = PolarsFeatures(spec=ALL_FAMILIES.model_dump_json()).fit(nvda)
    cut = nvda.item(cut_row, "date")
    clean = pf.transform(nvda)
    dirty = pf.transform(perturb_after(nvda, cut, seed=7))
    assert clean.shape == dirty.shape == (nvda.height, len(build_feature_defs(ALL_FAMILIES)))
    assert np.array_equal(bits(clean[: cut_row + 1]), bits(dirty[: cut_row + 1]))
    assert not np.array_equal(clean[cut_row + 1 :], dirty[cut_row + 1 :], equal_nan=True)


# --- 6. no window crosses tickers -----------------------------------------------------------


@pytest.mark.parametrize("cfg", CONFIGS)
def test_panel_features_equal_per_ticker_features(panel: pl.DataFrame, cfg: FeaturesConfig) -> None:
    defs = build_feature_defs(cfg)
    per_ticker = [d for d in defs if d.partition == "ticker"]  # cross-sectional ones span them
    names = [d.name for d in per_ticker]
    # interleave the tickers by date, so every ticker's neighbours in the input are other tickers
    shuffled = panel.sort("date", "ticker")
    out = add_features(shuffled.lazy(), defs).collect()
    assert out.select("ticker").equals(panel.sort("ticker", "date").select("ticker"))
    starts = out.with_row_index("i").group_by("ticker").agg(pl.col("i").min()).sort("i")
    assert starts.height == 3
    warm = total_warmup(defs) + 5
    for ticker, start in starts.iter_rows():
        alone = add_features(panel.filter(pl.col("ticker") == ticker), per_ticker)
        mine = out.slice(start, alone.height)
        assert mine.get_column("ticker").unique().to_list() == [ticker]
        # the rows at the ticker boundary: first row of each ticker, through the warm-up
        assert mine.head(warm).select(names).equals(alone.head(warm).select(names))
        for d in defs:
            assert mine[d.name].head(d.warmup).null_count() == d.warmup, (ticker, d.name)
        assert mine.select(alone.columns).equals(alone)


# --- 8. precompute once, slice per fold -----------------------------------------------------


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("tickers", [("NVDA",), ("NVDA", "SPY", "QQQ")], ids=["nvda", "panel"])
def test_features_on_full_history_sliced_equal_truncated_history(
    panel: pl.DataFrame, cfg: FeaturesConfig, tickers: tuple[str, ...]
) -> None:
    defs = build_feature_defs(cfg)
    prices = panel.filter(pl.col("ticker").is_in(tickers))
    full = add_features(prices.lazy(), defs).collect()
    for day in (
        dt.date(1999, 3, 1),
        dt.date(2001, 9, 17),
        dt.date(2012, 11, 1),
        dt.date(2020, 3, 16),
        dt.date(2026, 9, 24),
    ):
        before = pl.col("date") <= day
        truncated = add_features(prices.lazy().filter(before), defs).collect()
        sliced = full.filter(before)
        assert sliced.height == truncated.height > 0
        for d in defs:
            assert_bit_identical(sliced[d.name], truncated[d.name])


@pytest.mark.parametrize("horizon", [1, 5])
def test_training_set_rows_reused_across_folds(panel: pl.DataFrame, horizon: int) -> None:
    defs = build_feature_defs(FeaturesConfig())
    columns = tuple(d.name for d in defs)
    full = build_training_set(panel.lazy(), defs, columns, horizon)
    assert not np.isnan(full.X).any()  # the warm-up drop is exact: no feature is missing
    for day in (dt.date(2005, 6, 1), dt.date(2018, 1, 2)):
        part = build_training_set(
            panel.lazy().filter(pl.col("date") <= day), defs, columns, horizon
        )
        keys = pl.DataFrame({"ticker": part.tickers, "date": part.dates})
        in_full = pl.DataFrame({"ticker": full.tickers, "date": full.dates}).with_row_index()
        idx = keys.join(in_full, on=["ticker", "date"], how="left", maintain_order="left")
        assert idx["index"].null_count() == 0
        rows = idx["index"].to_numpy()
        assert np.array_equal(bits(full.X[rows]), bits(part.X))
        assert np.array_equal(full.y[rows], part.y)
        # the full set also has the `horizon` rows per ticker whose label needed later prices
        assert int((full.dates <= day).sum()) == part.X.shape[0] + 3 * horizon
