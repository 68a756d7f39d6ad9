"""Concurrent first use of a fresh sqlite tracking store, by real processes.

Without the file lock around store creation, two processes run MLflow's schema migrations at
once and one dies with ``table ... already exists``; without re-reading on "already exists",
two processes creating the same experiment race the same way.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import mlflow
import pytest
from support import make_project, spawn_stockpipe

WORKERS = 2
ROUNDS = 5


def _worker(uri: str, artifacts: str, barrier: Any, results: Any, rounds: int) -> None:
    """Line up with the other workers, then do what `train` does first: check(), start a run.

    With ``rounds`` the store exists already and is opened before the start line, so that the
    workers race on creating experiments only: one new experiment per round.
    """
    try:
        import mlflow  # the slow import happens before the start line

        from pipeline.tracking.mlflow_adapter import MlflowTracker

        if rounds:
            mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        run_ids = []
        for name in [f"race{k}" for k in range(rounds)] or ["race0"]:
            tracker = MlflowTracker(uri, name, Path(artifacts))
            barrier.wait(timeout=120)
            if not rounds:
                tracker.check()
                barrier.wait(timeout=120)  # both now race on creating the experiment
            with tracker.start_run("train") as run:
                run.log_metrics({"x": 1.0})
            run_ids.append(run.run_id)
        results.put(("ok", ",".join(run_ids)))
    except BaseException as exc:
        barrier.abort()  # do not leave the other worker waiting at the line
        results.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


def _race(uri: str, artifacts: Path, rounds: int) -> list[tuple[str, str]]:
    # Fresh processes forked from a clean server that has imported MLflow once (no store
    # opened, nothing cached): like two `stockpipe train`, minus the import time.
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["mlflow", "pipeline.tracking.mlflow_adapter"])
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(uri, str(artifacts), barrier, results, rounds))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * WORKERS, out
    return out


def _finished_runs(uri: str, experiment: str) -> list[Any]:
    client = mlflow.MlflowClient(tracking_uri=uri)
    exps = [e for e in client.search_experiments() if e.name == experiment]
    assert len(exps) == 1
    return [r for r in client.search_runs([exps[0].experiment_id]) if r.info.status == "FINISHED"]


@pytest.mark.slow  # several processes: seconds each
def test_two_processes_initialise_a_fresh_store_at_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    out = _race(uri, tmp_path / "artifacts", rounds=0)
    assert all(status == "ok" for status, _ in out), out
    assert len(_finished_runs(uri, "race0")) == WORKERS
    assert (tmp_path / "db" / "mlflow.db.lock").exists()


@pytest.mark.slow  # several processes: seconds each
def test_two_processes_create_the_same_experiment_at_once(tmp_path: Path) -> None:
    # The window between "not found" and "create" is short: several rounds make a collision
    # all but certain (each round collides about two times in three).
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri).search_experiments()  # store exists, experiments not
    out = _race(uri, tmp_path / "artifacts", rounds=ROUNDS)
    assert all(status == "ok" for status, _ in out), out
    for k in range(ROUNDS):
        assert len(_finished_runs(uri, f"race{k}")) == WORKERS


@pytest.mark.slow
def test_two_trains_at_once_on_a_fresh_store(tmp_path: Path) -> None:
    """Two real `stockpipe train` processes, one fresh tracking store, separate warehouses."""
    uri = f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"
    procs = []
    for name in ("a", "b"):
        conf = make_project(
            tmp_path, f"conf_{name}", data={"warehouse": str(tmp_path / f"{name}.duckdb")}
        )
        args = ["train", "--config", str(conf), "--tracking-uri", uri, "--trials", "1", "--quiet"]
        args += ["--summary", str(tmp_path / f"summary_{name}.json")]
        procs.append(spawn_stockpipe(tmp_path, *args))
    for p in procs:
        _, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stderr
    versions = mlflow.MlflowClient(registry_uri=uri).search_model_versions()
    assert sorted(str(v.version) for v in versions) == ["1", "2"]
