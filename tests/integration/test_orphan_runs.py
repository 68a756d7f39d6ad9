"""A killed `train` leaves RUNNING runs behind; the next check() marks them KILLED.

Real processes, a real SIGKILL and a real sqlite store: a subprocess opens a parent and a
nested run through the tracker and is killed mid-run. Runs whose owner is alive, runs from
another host and runs of a recycled pid are told apart by the owner tags.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from pipeline.tracking.mlflow_adapter import MlflowTracker
from pipeline.tracking.orphans import HOST_TAG, PID_TAG, START_TAG, owner_tags, process_alive
from pipeline.tracking.store import ensure_store

EXPERIMENT = "orphans"
# What `train` does up to its first candidate, then it hangs until killed.
TRAIN_THEN_HANG = """
import sys, time
from pathlib import Path
from pipeline.tracking.mlflow_adapter import MlflowTracker

tracker = MlflowTracker(sys.argv[1], "orphans", Path(sys.argv[2]))
tracker.check()
with tracker.start_run("train") as parent:
    with tracker.start_run("ridge", parent=parent) as child:
        print(parent.run_id, child.run_id, flush=True)
        time.sleep(600)
"""


def _killed_train(uri: str, artifacts: Path) -> tuple[int, str, str]:
    """Start the hanging `train`, SIGKILL it once its runs are open; (pid, parent, child)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAIN_THEN_HANG, uri, str(artifacts)],
        stdout=subprocess.PIPE,
        text=True,
    )
    ensure_store(uri)  # create the store while the child imports MLflow (it waits on the lock)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    parent_id, child_id = line.split()
    return proc.pid, parent_id, child_id


@pytest.mark.slow  # seconds: keeps the fast suite under 2 minutes
def test_killed_runs_of_this_host_are_marked_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    pid, parent_id, child_id = _killed_train(uri, tmp_path / "artifacts")
    assert not process_alive(pid)
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    parent_tags = client.get_run(parent_id).data.tags
    assert parent_tags[HOST_TAG] == socket.gethostname() and parent_tags[PID_TAG] == str(pid)
    assert START_TAG in parent_tags  # Linux: the pid-reuse guard is recorded
    live = client.create_run(exp_id, tags=owner_tags()).info.run_id  # this test: alive
    elsewhere = client.create_run(exp_id, tags={HOST_TAG: "other-host", PID_TAG: str(pid)})
    recycled = client.create_run(exp_id, tags={**owner_tags(), START_TAG: "1"})
    untagged = client.create_run(exp_id, tags={"mlflow.parentRunId": child_id})

    with caplog.at_level(logging.WARNING):
        MlflowTracker(uri, EXPERIMENT, tmp_path / "artifacts").check()

    status = {rid: client.get_run(rid).info.status for rid in _all_runs(client, exp_id)}
    assert status[parent_id] == status[child_id] == "KILLED"
    assert status[recycled.info.run_id] == "KILLED"  # our pid, but another process start
    assert status[untagged.info.run_id] == "KILLED"  # child of a killed run, no owner tags
    assert status[live] == "RUNNING"
    assert status[elsewhere.info.run_id] == "RUNNING"  # another host's pid: never judged here
    assert parent_id in caplog.text and child_id in caplog.text and live not in caplog.text


def test_check_before_any_run_is_harmless(tmp_path: Path) -> None:
    """No experiment yet: check() creates the store and nothing else."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = MlflowTracker(uri, EXPERIMENT, tmp_path / "artifacts")
    tracker.check()
    assert tracker.reap_orphans() == []
    assert mlflow.MlflowClient(tracking_uri=uri).get_experiment_by_name(EXPERIMENT) is None


def test_process_alive() -> None:
    assert process_alive(os.getpid(), owner_tags().get(START_TAG))
    assert not process_alive(os.getpid(), "1")  # same pid, different start: pid reused
    assert not process_alive(0) and not process_alive(-1)


def _all_runs(client: mlflow.MlflowClient, exp_id: str) -> list[str]:
    return [r.info.run_id for r in client.search_runs([exp_id])]
