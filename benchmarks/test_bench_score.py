"""`stockpipe score` against the import floor: one ticker and a 500-ticker panel.

    pytest benchmarks/test_bench_score.py -s                    # -s shows the printed ratios
    STOCKPIPE_BENCH_SCORE_MANY=0 pytest benchmarks/test_bench_score.py    # one ticker only
    STOCKPIPE_BENCH_SCORE_TICKERS=100 STOCKPIPE_BENCH_SCORE_DAYS=2000 pytest ...   # other sizes
    STOCKPIPE_BENCH_SCORE_ROUNDS=7 pytest benchmarks/test_bench_score.py   # more rounds (3)

The floor is what the issue measures against: a fresh interpreter that only imports polars,
duckdb, scikit-learn and lightgbm. The targets are `score` for one ticker within 2x the floor
and for 500 tickers within 3x. Every process is fresh (no warm interpreter, the OS file cache
shared), and the three commands run interleaved, round after round, so a machine that gets
busier part way through slows all of them alike; the medians are compared. Nothing about speed
is asserted: the ratios are printed and kept in ``extra_info``.

The panel is synthetic (``make_panel``: seeded, business days, a benchmark close written as
SPY); the model is the shipped feature set -> imputer -> scaler -> Ridge, registered as the
champion in a sqlite MLflow store, exactly what `score` loads by default.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import env_int, fit_champion, make_panel
from support import STOCKPIPE, make_project

from pipeline.config import load_config

GROUP = "score"
FLOOR = "import polars, duckdb, sklearn, lightgbm"
TARGETS = {"one": 2.0, "many": 3.0}  # the ratios to the floor
ROUNDS = env_int("STOCKPIPE_BENCH_SCORE_ROUNDS", 3)  # after one warm-up round
MANY = env_int("STOCKPIPE_BENCH_SCORE_TICKERS", 500)
# Days per ticker in the scored files: about four years, the history a nightly file carries.
DAYS = env_int("STOCKPIPE_BENCH_SCORE_DAYS", 1_000)
# CI runs the one-ticker case only: the 500-ticker panel adds a minute of data and runs.
WITH_MANY = os.environ.get("STOCKPIPE_BENCH_SCORE_MANY", "1").strip() != "0"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A config per panel size (one ticker, ``MANY`` tickers), sharing one MLflow store whose
    champion is the fitted model, and the benchmark's prices as SPY."""
    from pipeline.tracking.mlflow_adapter import MlflowRegistry, MlflowTracker

    root = tmp_path_factory.mktemp("score")
    pipe = fit_champion(make_panel(1, 1_500, seed=11))
    warmup = int(pipe.named_steps["features"].warmup_)
    panel = make_panel(MANY if WITH_MANY else 1, max(DAYS, warmup + 50))
    spy = panel.filter(pl.col("ticker") == panel["ticker"][0]).select(
        "date", *(pl.col("bench_close").alias(c) for c in ("open", "high", "low", "close"))
    )
    spy.with_columns(volume=pl.lit(1e6)).write_parquet(root / "SPY.parquet")
    confs = {}
    for case, n in (("one", 1), ("many", MANY)) if WITH_MANY else (("one", 1),):
        data = root / f"panel{n}.parquet"
        tickers = panel["ticker"].unique(maintain_order=True)[:n].to_list()
        panel.filter(pl.col("ticker").is_in(tickers)).drop("bench_close").write_parquet(data)
        overrides = {
            "path": str(data),
            "benchmark_path": str(root / "SPY.parquet"),
            "warehouse": str(root / f"warehouse{n}.duckdb"),
        }
        confs[case] = (make_project(root, f"conf{n}", data=overrides), n)
    cfg = load_config(confs["one"][0])
    tracker = MlflowTracker(cfg.tracking_uri, "bench", root / "artifacts")
    registry = MlflowRegistry(cfg.tracking_uri, cfg.tracking.registered_model)
    example = make_panel(1, warmup + 5, seed=11).to_pandas()
    with tracker.start_run("fit") as run:
        uri = run.log_model(pipe, example, {})
        registry.register(uri, run.run_id, {"promoted": "true", "horizon": "1", "benchmark": "SPY"})
    registry.set_alias(cfg.tracking.champion_alias, "1", record=True)
    return {"root": root, "confs": confs}


def seconds(argv: list[str], cwd: Path) -> float:
    """Wall seconds of one fresh process running ``argv`` to a successful end."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - began
    assert done.returncode == 0, done.stderr[-2000:]
    return took


@pytest.mark.benchmark(group=GROUP)
def test_bench_score_vs_import_floor(
    benchmark: Any, project: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    root = project["root"]
    commands = {"floor": [sys.executable, "-c", FLOOR]}
    for case, (conf, _) in project["confs"].items():
        out = str(root / f"out_{case}.parquet")
        commands[case] = [str(STOCKPIPE), "score", "--config", str(conf), "--output", out]
    for argv in commands.values():  # warm-up: the OS file cache, MLflow's first connection
        seconds(argv, root)

    def interleaved() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(ROUNDS):
            for name, argv in commands.items():
                times[name].append(seconds(argv, root))
        return times

    times = benchmark.pedantic(interleaved, rounds=1, iterations=1)
    medians = {name: statistics.median(each) for name, each in times.items()}
    floor = medians["floor"]
    ratios = {case: medians[case] / floor for case in project["confs"]}
    benchmark.extra_info.update(
        rounds=ROUNDS,
        days=DAYS,
        floor_s=floor,
        **{f"{case}_s": medians[case] for case in ratios},
        **{f"{case}_ratio": ratio for case, ratio in ratios.items()},
        tickers={case: n for case, (_, n) in project["confs"].items()},
    )
    lines = [f"import floor ({FLOOR}): median {floor:.2f} s over {ROUNDS} fresh processes"]
    for case, ratio in ratios.items():
        n, target = project["confs"][case][1], TARGETS[case]
        met = "met" if ratio <= target else "NOT met"
        lines.append(
            f"stockpipe score, {n} ticker(s) x {DAYS} days: median {medians[case]:.2f} s = "
            f"{ratio:.2f}x the floor (target {target:g}x: {met})"
        )
    with capsys.disabled():
        print("\n" + "\n".join(f"  score bench: {line}" for line in lines))
