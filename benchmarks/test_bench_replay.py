"""Replay scoring against scoring each evening: 430 trading dates, 1 ticker and 100 tickers.

    pytest benchmarks/test_bench_replay.py -s        # -s shows the printed comparison
    STOCKPIPE_BENCH_SUBPROCESS=0 pytest benchmarks/test_bench_replay.py   # in-process only

`stockpipe score --start D1 --end D2` predicts every date of the range in one model call; the
alternative is one `score` per evening on the data cut at that date. That alternative is
estimated, not run 430 times: one `score` use case call in process (the MLflow model load, the
input validation, the warehouse and the prediction, as each evening pays them) and one
`stockpipe score` subprocess (plus interpreter start and imports), each multiplied by 430.

The panel is synthetic (``make_panel``: seeded, business days, a benchmark close written as
SPY), the model is the shipped feature set (warm-up 321 rows) -> imputer -> scaler -> Ridge,
registered as champion in a sqlite MLflow store, exactly what `score` loads. Only ratios are
printed and recorded (``extra_info``); nothing about speed is asserted.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

import polars as pl
import pytest
from conftest import fit_champion, make_panel
from support import make_project, run_stockpipe

from pipeline import bootstrap
from pipeline.config import load_config
from pipeline.serving.replay import replay
from pipeline.serving.score import score
from pipeline.serving.sinks import ParquetSink
from pipeline.settings import StockpipeConfig

GROUP = "replay"
DATES = 430  # trading dates replayed (about 20 months)
SIZES = (1, 100)  # tickers
SUBPROCESS = os.environ.get("STOCKPIPE_BENCH_SUBPROCESS", "1").strip() != "0"
SCORE_ROUNDS = 3  # in-process `score` calls timed (median), after one warm-up call


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A project per panel size, sharing one MLflow store whose champion is the fitted model."""
    from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

    root = tmp_path_factory.mktemp("replay")
    pipe = fit_champion(make_panel(1, 2_000, seed=11))
    warmup = int(pipe.named_steps["features"].warmup_)
    days = DATES + warmup + 50  # every replayed date has its full warm-up behind it
    panel = make_panel(max(SIZES), days)
    spy = panel.filter(pl.col("ticker") == panel["ticker"][0]).select(
        "date", *(pl.col("bench_close").alias(c) for c in ("open", "high", "low", "close"))
    )
    spy.with_columns(volume=pl.lit(1e6)).write_parquet(root / "SPY.parquet")
    confs = {}
    for n in SIZES:
        data = root / f"panel{n}.parquet"
        tickers = panel["ticker"].unique(maintain_order=True)[:n]
        panel.filter(pl.col("ticker").is_in(tickers.to_list())).drop("bench_close").write_parquet(
            data
        )
        overrides = {"path": str(data), "benchmark_path": str(root / "SPY.parquet")}
        overrides["warehouse"] = str(root / f"warehouse{n}.duckdb")
        confs[n] = make_project(root, f"conf{n}", data=overrides)
    cfg = load_config(confs[1])
    tracker = MlflowTracker(cfg.tracking_uri, "bench", root / "artifacts")
    registry = MlflowRegistry(cfg.tracking_uri, cfg.tracking.registered_model)
    example = make_panel(1, warmup + 5, seed=11).to_pandas()
    with tracker.start_run("fit") as run:
        uri = run.log_model(pipe, example, {})
        tags = {"promoted": "true", "horizon": "1", "benchmark": "SPY"}
        registry.register(uri, run.run_id, tags)
    registry.set_alias(cfg.tracking.champion_alias, "1", record=True)
    dates = panel["date"].unique().sort()[-DATES:]
    return {"root": root, "confs": confs, "start": dates[0], "end": dates[-1]}


def timed(func: Callable[[], object]) -> float:
    began = time.perf_counter()
    func()
    return time.perf_counter() - began


class Clocked:
    """``func`` with each call's seconds kept: the same numbers with or without pytest-benchmark
    (``--benchmark-disable`` runs it once and keeps no stats)."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func, self.seconds = func, list[float]()

    def __call__(self, *args: Any) -> Any:
        began = time.perf_counter()
        result = self.func(*args)
        self.seconds.append(time.perf_counter() - began)
        return result

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)


def report(capsys: pytest.CaptureFixture[str], lines: list[str]) -> None:
    """Print past pytest's capture: the numbers are the point of this file."""
    with capsys.disabled():
        print("\n" + "\n".join(f"  replay bench: {line}" for line in lines))


@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("tickers", SIZES)
def test_bench_replay_in_process(
    benchmark: Any, project: dict[str, Any], tickers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg: StockpipeConfig = load_config(project["confs"][tickers])
    out = project["root"] / f"out{tickers}"

    def one_score() -> object:
        return score(cfg, bootstrap.score_ports(cfg), ParquetSink(out / "score.parquet"))

    @Clocked
    def one_replay() -> Any:
        sink = ParquetSink(out / "replay.parquet")
        return replay(cfg, bootstrap.score_ports(cfg), sink, project["start"], project["end"])

    one_score()  # warm-up: imports, MLflow's first connection
    each = statistics.median(timed(one_score) for _ in range(SCORE_ROUNDS))
    result = benchmark.pedantic(one_replay, rounds=2, iterations=1)
    assert result.frame.height == tickers * DATES and result.calls == 1
    seconds = one_replay.mean
    ratio = DATES * each / seconds
    benchmark.extra_info.update(
        tickers=tickers, dates=DATES, score_s=each, replay_s=seconds, speedup=ratio
    )
    report(
        capsys,
        [
            f"{tickers} ticker(s) x {DATES} dates, in process: replay {seconds:.2f} s; one "
            f"score {each:.3f} s x {DATES} = {DATES * each:.0f} s; replay {ratio:.0f}x faster",
        ],
    )


@pytest.mark.skipif(not SUBPROCESS, reason="STOCKPIPE_BENCH_SUBPROCESS=0")
@pytest.mark.benchmark(group=GROUP)
@pytest.mark.parametrize("tickers", SIZES)
def test_bench_replay_cli(
    benchmark: Any, project: dict[str, Any], tickers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    root, conf = project["root"], str(project["confs"][tickers])
    out = str(root / f"cli{tickers}.parquet")

    def cli(*flags: str) -> subprocess.CompletedProcess[str]:
        done = run_stockpipe(root, "score", "--config", conf, "--output", out, *flags)
        assert done.returncode == 0, done.stderr
        return done

    span = ("--start", str(project["start"]), "--end", str(project["end"]))
    each = timed(cli)
    clocked = Clocked(cli)
    result = benchmark.pedantic(clocked, args=span, rounds=1, iterations=1)
    assert f"wrote {tickers * DATES} row(s)" in result.stdout
    seconds = clocked.mean
    ratio = DATES * each / seconds
    benchmark.extra_info.update(
        tickers=tickers, dates=DATES, score_s=each, replay_s=seconds, speedup=ratio
    )
    report(
        capsys,
        [
            f"{tickers} ticker(s) x {DATES} dates, `stockpipe score` subprocess: replay "
            f"{seconds:.2f} s; one score {each:.2f} s x {DATES} = {DATES * each / 60:.0f} min; "
            f"replay {ratio:.0f}x faster",
        ],
    )
