"""Where the engine's time goes: each feature of the shipped set timed alone.

    python benchmarks/profile_features.py --tickers 500 --days 5000 --repeat 7

Runs ``collect(add_features(panel.lazy(), [d]))`` for every def ``d`` of the shipped feature set
(``conf/base/model.yaml``), exactly as production collects it, and reports the median time of
``--repeat`` calls after one warm-up. The *marginal* cost of a def is its time minus that of
``add_features`` with no defs at all (sort by ticker and date, per-ticker row number), the
fixed part every call pays. Marginal costs are also summed per family (``rolling_std``,
``macd``, ...); with ``--pandas`` the pandas reference is timed per family the same way. The
sum of the parts is not the whole: the engine runs expressions of one ``with_columns`` in
parallel and shares nothing between them, pandas shares its base series (``logret_1``, the
grouping) within a family only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from conftest import DEFAULT_SEED, make_panel, shipped_feature_set
from pandas_reference import pandas_features

from pipeline.features.engine import add_features, collect
from pipeline.features.spec import FeaturesConfig


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def family_of(cfg: FeaturesConfig) -> dict[str, str]:
    """Feature name -> the config key of the family that declares it."""
    out = {}
    for kind, family in cfg.families():
        if hasattr(family, "defs"):
            out.update({d.name: kind for d in family.defs(kind)})
    return out


def only(cfg: FeaturesConfig, kind: str) -> FeaturesConfig:
    """``cfg`` with every family but ``kind`` switched off."""
    off = {k: None for k, _ in cfg.families()}
    return cfg.model_copy(update={**off, kind: getattr(cfg, kind)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--days", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pandas", action="store_true", help="also time pandas per family")
    args = parser.parse_args(argv)

    fs = shipped_feature_set()
    panel = make_panel(args.tickers, args.days, seed=args.seed)
    rows = panel.height
    fam = family_of(fs.config)

    def engine(defs: list[Any]) -> Callable[[], Any]:
        return lambda: collect(add_features(panel.lazy(), defs))

    whole = median_seconds(engine(fs.defs), args.repeat)
    base = median_seconds(engine([]), args.repeat)
    alone = {d.name: median_seconds(engine([d]), args.repeat) for d in fs.defs}
    marginal = {n: t - base for n, t in alone.items()}
    total = sum(marginal.values())

    print(f"panel {args.tickers} x {args.days} = {rows:,} rows, median of {args.repeat}")
    rate = rows / whole / 1e6
    print(f"whole set ({len(fs.defs)} features): {whole * 1e3:,.0f} ms, {rate:.2f} M rows/s")
    print(f"fixed part (sort + row number, no features): {base * 1e3:,.0f} ms")
    print(f"sum of marginal costs: {total * 1e3:,.0f} ms\n")
    print("| feature | family | alone (ms) | marginal (ms) | share of sum |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, cost in sorted(marginal.items(), key=lambda kv: -kv[1]):
        print(
            f"| `{name}` | {fam.get(name, '?')} | {alone[name] * 1e3:,.1f} | {cost * 1e3:,.1f} "
            f"| {cost / total:.1%} |"
        )

    by_family: dict[str, list[str]] = {}
    for name in marginal:
        by_family.setdefault(fam.get(name, "?"), []).append(name)
    pandas_frame = panel.to_pandas() if args.pandas else None
    print("\n| family | features | engine marginal (ms) | share | pandas (ms) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    ranked = sorted(by_family.items(), key=lambda kv: -sum(marginal[n] for n in kv[1]))
    for kind, names in ranked:
        cost = sum(marginal[n] for n in names)
        pandas_ms = ""
        if pandas_frame is not None:
            cfg = only(fs.config, kind)
            cols = tuple(n for n in fs.columns if n in names)
            t = median_seconds(
                lambda c=cfg, k=cols: pandas_features(pandas_frame, c, k), args.repeat
            )
            pandas_ms = f"{t * 1e3:,.0f}"
        print(f"| {kind} | {len(names)} | {cost * 1e3:,.0f} | {cost / total:.1%} | {pandas_ms} |")


if __name__ == "__main__":
    main()
