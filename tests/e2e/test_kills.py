"""`stockpipe train` stopped by Ctrl-C or SIGTERM mid-run: one line, the shell's exit code,
no RUNNING run left behind, no half-written file, and the next run succeeds.

Real processes on the conf_dir project: the signal is sent once the job's parent MLflow run
is RUNNING (read from the sqlite store), i.e. during the competition.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from pipeline.tracking.store import ensure_store

STOCKPIPE = [sys.executable, "-c", "from pipeline.cli import main; main()"]


def statuses(uri: str) -> list[str]:
    """Status of every run in the store (none before the first run)."""
    ensure_store(uri)  # waits for a train creating the store, instead of racing it
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return [r.info.status for r in client.search_runs(experiments)] if experiments else []


def signal_mid_train(conf_dir: Path, uri: str, signum: int) -> tuple[int, str]:
    """Start `train`, send ``signum`` once a run is RUNNING; return its exit code and stderr."""
    proc = subprocess.Popen(
        [*STOCKPIPE, "train", "--config", str(conf_dir), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if Path(uri.removeprefix("sqlite:///")).exists() and "RUNNING" in statuses(uri):
            break
        time.sleep(0.1)
    assert proc.poll() is None, "train finished before it could be stopped"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def messages(stderr: str) -> list[str]:
    """stderr without the log lines a normal run prints."""
    return [line for line in stderr.splitlines() if line.strip() and " INFO " not in line]


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_exit_130(conf_dir: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, err = signal_mid_train(conf_dir, uri, signal.SIGINT)
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and "Aborted!" not in err
    lines = messages(err)
    assert lines[-1].startswith("interrupted: "), err[-3000:]
    assert len(lines) <= 4, err[-3000:]  # at most optuna's two-line note of the cut trial
    assert "RUNNING" not in statuses(uri)
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.slow
def test_sigterm_ends_runs_and_the_next_train_succeeds(conf_dir: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code, err = signal_mid_train(conf_dir, uri, signal.SIGTERM)
    assert code == 143, err[-3000:]
    assert "Traceback" not in err and messages(err)[-1].startswith("terminated: ")
    # Ended by the process itself: nothing is left for an orphan reaper on this host (a
    # container's successor has another host name and would never reap them).
    assert "RUNNING" not in statuses(uri)
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "summary.json").exists()

    again = subprocess.run(
        [*STOCKPIPE, "train", "--config", str(conf_dir), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "orphan" not in again.stderr
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("StocksPredictionModel", "champion")
    assert champion.tags["promoted"] == "true"
    assert (tmp_path / "summary.json").exists()


# argv: signal name. The signal arrives while a finaliser runs (as when Ctrl-C lands in
# LightGBM's Booster.__del__): Python swallows the exception raised there.
_SIGNAL_IN_FINALISER = """
import gc, signal, sys, time
from pipeline.cli.interrupts import install_handlers

install_handlers()


class Resource:
    def __del__(self) -> None:
        signal.raise_signal(getattr(signal, sys.argv[1]))
        time.sleep(1.0)


try:
    Resource()
    gc.collect()
    for _ in range(100):
        time.sleep(0.01)
    print("carried on")
except KeyboardInterrupt as exc:
    print(f"stopped by {type(exc).__name__}")
"""


@pytest.mark.parametrize(
    ("signame", "stopped_by"), [("SIGINT", "KeyboardInterrupt"), ("SIGTERM", "Terminated")]
)
def test_an_interrupt_swallowed_by_a_finaliser_still_stops_the_job(
    signame: str, stopped_by: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SIGNAL_IN_FINALISER, signame],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == f"stopped by {stopped_by}", done.stdout + done.stderr
    assert "Traceback" not in done.stderr


# During training a signal only records a stop; the job raises it at its next safe point
# (``checkpoint``), and a second signal exits at once. argv: "once" or "twice".
_STOP_AT_SAFE_POINT = """
import os, signal, sys, time
from pipeline.cli.interrupts import install_handlers, stop_at_safe_points
from pipeline.training.stopping import checkpoint, stop_requested

install_handlers()
try:
    with stop_at_safe_points():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # inside a fit, say: nothing is raised here
        print("recorded" if stop_requested() else "lost", flush=True)
        if sys.argv[1] == "twice":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        checkpoint()
        print("carried on", flush=True)
except KeyboardInterrupt as exc:
    print(f"stopped by {type(exc).__name__}", flush=True)
"""


@pytest.mark.parametrize(
    ("times", "code", "said"),
    [("once", 0, ["recorded", "stopped by Terminated"]), ("twice", 143, ["recorded"])],
)
def test_sigterm_in_training_stops_at_the_next_safe_point(
    times: str, code: int, said: list[str]
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _STOP_AT_SAFE_POINT, times],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stdout.split("\n")[:-1] == said, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
