"""Hand-tuned Polars version of a feature set: the bar the feature engine has to reach.

Written the way one would tune a single pipeline by hand, knowing the whole feature set:

* one sort by (ticker, date) and each row's position within its ticker, computed once from
  the ticker change points (no ``.over``);
* every base series once, on the whole sorted column (one-day log returns of the close and of
  the benchmark, ``close.diff(1)``, the true range ...), nulled on each ticker's first row;
* every rolling piece once per (series, statistic, window), on the whole column, shared by
  the features that need it (the 60-day variance of returns serves ``rolling_std_60``, beta
  and correlation; the Bollinger mean and std serve %B and width; ``stoch_k`` serves
  ``stoch_d``), and each feature nulled for its ticker's first rows that would read the
  previous ticker (the rows its windows and shifts reach back);
* every recursive smoother once, per ticker (their state must restart at each ticker), all of
  one dependency level in a single ``pl.struct(...).over(ticker)``.

Same definitions and parameters as ``pipeline.features.library`` (read from the same
``FeaturesConfig``); ``rolling_min/max/sum``, ``simple_return``, ``ewm_mean`` and
``cross_section`` are not needed by the shipped set and not implemented.
"""

from __future__ import annotations

import polars as pl

from pipeline.features.library import convergence_rows, span_alpha
from pipeline.features.spec import BENCH_CLOSE, FeaturesConfig

TICKER, DATE = "ticker", "date"
POS = "__pos"
C, H, L, V = pl.col("close"), pl.col("high"), pl.col("low"), pl.col("volume")


class _Plan:
    """Shared columns by stage: base series, smoothers by level, rolling pieces."""

    def __init__(self) -> None:
        self.base: dict[int, dict[str, pl.Expr]] = {}  # tier 1 reads tier 0
        self.smooth: dict[int, dict[str, pl.Expr]] = {}
        self.after_smooth: dict[str, pl.Expr] = {}  # whole-column, reads level-1 smoothers
        self.rolls: dict[str, pl.Expr] = {}
        self.after_rolls: dict[str, pl.Expr] = {}  # whole-column, reads rolling pieces
        self.features: dict[str, pl.Expr] = {}

    def series(self, name: str, expr: pl.Expr, reach: int, tier: int = 0) -> pl.Expr:
        """A base series on the whole column, null where it would read the previous ticker."""
        masked = pl.when(pl.col(POS) >= reach).then(expr) if reach else expr
        self.base.setdefault(tier, {}).setdefault(name, masked)
        return pl.col(name)

    def ewm(self, src: str, alpha: float, level: int = 1) -> pl.Expr:
        """Recursive mean of a shared column per ticker, missing until it has converged."""
        name = f"__ewm_{src}_{alpha!r}"
        expr = pl.col(src).ewm_mean(alpha=alpha, adjust=False, min_samples=convergence_rows(alpha))
        self.smooth.setdefault(level, {}).setdefault(name, expr.alias(name))
        return pl.col(name)

    def roll(self, src: str, stat: str, w: int, **kw: int) -> pl.Expr:
        """A whole-column rolling statistic of a shared or input column, computed once."""
        name = f"__{stat}_{src}_{w}_{kw}"
        self.rolls.setdefault(name, getattr(pl.col(src), f"rolling_{stat}")(w, **kw))
        return pl.col(name)

    def add(self, name: str, expr: pl.Expr, reach: int) -> None:
        """A feature, nulled for each ticker's first ``reach`` rows."""
        self.features[name] = pl.when(pl.col(POS) >= reach).then(expr) if reach else expr

    def logret(self) -> pl.Expr:
        return self.series("__r", (C / C.shift(1)).log(), 1)


def _returns_and_lags(p: _Plan, cfg: FeaturesConfig) -> None:
    if cfg.log_return is not None:
        for w in cfg.log_return.windows:
            p.add(f"logret_{w}", p.logret() if w == 1 else (C / C.shift(w)).log(), w)
    if cfg.lag is not None:
        assert cfg.lag.of == "logret_1"
        for k in cfg.lag.lags:
            p.add(f"lag_logret_1_{k}", p.logret().shift(k), k + 1)


def _rolling(p: _Plan, cfg: FeaturesConfig) -> None:
    for kind in ("rolling_mean", "rolling_std", "rolling_skew", "rolling_zscore"):
        fam = getattr(cfg, kind)
        if fam is None:
            continue
        src, b = ("__r", 1) if fam.of == "logret_1" else (fam.of, 0)
        p.logret()
        for w in fam.windows:
            name, reach = f"{kind}_{fam.of}_{w}", b + w - 1
            if kind == "rolling_mean":
                p.add(name, p.roll(src, "mean", w), reach)
            elif kind == "rolling_std":
                p.add(name, p.roll(src, "var", w).sqrt(), reach)  # the var serves beta too
            elif kind == "rolling_skew":
                p.add(name, pl.col(src).rolling_skew(w, bias=False), reach)
            else:
                std = p.roll(src, "std", w)
                p.add(name, (pl.col(src) - p.roll(src, "mean", w)) / std, reach)
    for kind, stat in (("dist_max", "max"), ("dist_min", "min")):
        fam = getattr(cfg, kind)
        for w in fam.windows if fam is not None else ():
            p.add(f"{kind}_{fam.of}_{w}", pl.col(fam.of) / p.roll(fam.of, stat, w) - 1.0, w - 1)


def _smoothers(p: _Plan, cfg: FeaturesConfig) -> None:
    if cfg.ewm_vol is not None:
        p.series("__r2", p.logret() * p.logret(), 0, tier=1)
        for s in cfg.ewm_vol.spans:
            p.features[f"ewm_vol_logret_1_{s}"] = p.ewm("__r2", span_alpha(s)).sqrt()
    if cfg.rsi is not None:
        d = p.series("__d", C.diff(1), 1)
        p.series("__gain", d.clip(lower_bound=0.0), 0, tier=1)
        p.series("__loss", (-d).clip(lower_bound=0.0), 0, tier=1)
        for w in cfg.rsi.windows:
            gain, loss = p.ewm("__gain", 1.0 / w), p.ewm("__loss", 1.0 / w)
            p.features[f"rsi_{w}"] = 100.0 * gain / (gain + loss)
    if cfg.natr is not None:
        prev = p.series("__prev", C.shift(1), 1)
        tr = pl.max_horizontal(H - L, (H - prev).abs(), (L - prev).abs())
        p.series("__tr", tr, 0, tier=1)
        for w in cfg.natr.windows:
            p.features[f"natr_{w}"] = 100.0 * p.ewm("__tr", 1.0 / w) / C
    if cfg.macd is not None:
        f, s, g = cfg.macd.fast, cfg.macd.slow, cfg.macd.signal
        line = p.ewm("close", span_alpha(f)) / p.ewm("close", span_alpha(s)) - 1.0
        p.after_smooth["__macd_line"] = line
        signal = p.ewm("__macd_line", span_alpha(g), level=2)
        p.features[f"macd_line_{f}_{s}"] = pl.col("__macd_line")
        p.features[f"macd_signal_{f}_{s}_{g}"] = signal
        p.features[f"macd_hist_{f}_{s}_{g}"] = pl.col("__macd_line") - signal


def _bands(p: _Plan, cfg: FeaturesConfig) -> None:
    if cfg.bollinger is not None:
        k = cfg.bollinger.k
        tag = str(int(k)) if float(k).is_integer() else str(k).replace(".", "p")
        for w in cfg.bollinger.windows:
            mid, sd = p.roll("close", "mean", w), p.roll("close", "std", w, ddof=0)
            p.add(f"bb_pctb_{w}_{tag}", (C - (mid - k * sd)) / (2.0 * k * sd), w - 1)
            p.add(f"bb_width_{w}_{tag}", 2.0 * k * sd / mid, w - 1)
    if cfg.stochastic is not None:
        m = cfg.stochastic.smooth
        for w in cfg.stochastic.windows:
            lo, hi = p.roll("low", "min", w), p.roll("high", "max", w)
            p.after_rolls[f"__stoch_k_{w}"] = 100.0 * (C - lo) / (hi - lo)
            k_col = pl.col(f"__stoch_k_{w}")
            p.add(f"stoch_k_{w}", k_col, w - 1)
            p.add(f"stoch_d_{w}_{m}", k_col.rolling_mean(m), w + m - 2)


def _volume_and_market(p: _Plan, cfg: FeaturesConfig) -> None:
    if cfg.obv_ratio is not None:
        d = p.series("__d", C.diff(1), 1)
        p.series("__sv", d.sign() * V, 0, tier=1)
        for w in cfg.obv_ratio.windows:
            p.add(f"obv_ratio_{w}", p.roll("__sv", "sum", w) / p.roll("volume", "sum", w), w)
    for w in cfg.volume_ratio.windows if cfg.volume_ratio is not None else ():
        p.add(f"volume_ratio_{w}", V / p.roll("volume", "mean", w), w - 1)
    if cfg.hl_range is not None and cfg.hl_range.enabled:
        p.add("hl_range", (H - L) / C, 0)
    if cfg.market is not None:
        bench, tag = pl.col(BENCH_CLOSE), cfg.market.benchmark.lower()
        r, rb = p.logret(), p.series("__rb", (bench / bench.shift(1)).log(), 1)
        for w in cfg.market.windows:
            cov = pl.rolling_cov(r, rb, window_size=w)
            var_r, var_b = p.roll("__r", "var", w), p.roll("__rb", "var", w)
            p.add(f"beta_{tag}_{w}", cov / var_b, w)
            p.add(f"corr_{tag}_{w}", cov / (var_r * var_b).sqrt(), w)
            excess = (C / C.shift(w)).log() - (bench / bench.shift(w)).log()
            p.add(f"excess_logret_{tag}_{w}", excess, w)


def _calendar(p: _Plan, cfg: FeaturesConfig) -> None:
    fields = cfg.calendar.fields if cfg.calendar is not None else ()
    dt = pl.col(DATE).dt
    exprs = {
        "day_of_week": dt.weekday().cast(pl.Float64),
        "month": dt.month().cast(pl.Float64),
        "days_to_month_end": (dt.days_in_month().cast(pl.Int32) - dt.day().cast(pl.Int32)),
    }
    for f in fields:
        p.add(f"cal_{f}", exprs[f].cast(pl.Float64), 0)


def polars_features(
    prices: pl.DataFrame, cfg: FeaturesConfig, columns: tuple[str, ...]
) -> pl.DataFrame:
    """Sort by (ticker, date) and append ``columns`` (features ``cfg`` declares), per ticker."""
    p = _Plan()
    for build in (_returns_and_lags, _rolling, _smoothers, _bands, _volume_and_market, _calendar):
        build(p, cfg)
    idx = pl.int_range(pl.len(), dtype=pl.Int64)
    start = pl.when(pl.col(TICKER).ne_missing(pl.col(TICKER).shift(1))).then(idx)
    q = prices.lazy().sort(TICKER, DATE).with_columns((idx - start.forward_fill()).alias(POS))
    for _, tier in sorted(p.base.items()):
        q = q.with_columns([e.alias(n) for n, e in tier.items()])
    for level, exprs in sorted(p.smooth.items()):
        q = q.with_columns(pl.struct(list(exprs.values())).over(TICKER).alias("__s")).unnest("__s")
        if level == 1 and p.after_smooth:  # the MACD line, read by the level-2 signal
            q = q.with_columns([e.alias(n) for n, e in p.after_smooth.items()])
    q = q.with_columns([e.alias(n) for n, e in p.rolls.items()])
    if p.after_rolls:
        q = q.with_columns([e.alias(n) for n, e in p.after_rolls.items()])
    q = q.with_columns([p.features[n].alias(n) for n in columns])
    return q.select([*prices.columns, *columns]).collect(engine="in-memory")


def floor_features(prices: pl.DataFrame, n_features: int) -> pl.DataFrame:
    """The floor: the same sort, then ``n_features`` output columns of one cheap pass each.

    What any implementation of ``n_features`` Float64 features per row pays at least: read
    and sort the panel once, compute one whole-column expression per output column and
    materialise the output (``close * k``: one multiply per cell, no window, no ticker logic).
    """
    outs = [(C * float(k + 1)).alias(f"__floor_{k}") for k in range(n_features)]
    return prices.lazy().sort(TICKER, DATE).with_columns(outs).collect(engine="in-memory")
