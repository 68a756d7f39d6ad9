"""`--env server` end to end: a real MLflow server on PostgreSQL and Optuna studies in PostgreSQL.

One server (own process group, free port) and two throwaway databases serve the whole module;
the finalizers always stop the server and drop the databases. Every `stockpipe` command runs as
a subprocess, as a user would run it, from a private conf copy: conf/base + conf/server, with
conf/local pointing the tracking URI at the server's actual port and the study storage at the
fresh database (same URL form as conf/server/training.yaml, other database name).

Needs PostgreSQL 15 on 127.0.0.1:5432 with trust auth for user `postgres` (the dev machine and
CI have it); skipped with the reason otherwise. The fail-fast tests need no database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import mlflow
import optuna
import polars as pl
import pytest
import yaml
from optuna.trial import TrialState
from support import (
    FAST_CANDIDATES,
    REPO,
    STUDY_LIGHTGBM,
    STUDY_RIDGE,
    fresh_databases,
    make_project,
    run_stockpipe,
    shared_study_trials,
    spawn_stockpipe,
)
from tracking_server import (
    SERVER_ENV,
    ServerHandle,
    free_port,
    server_command,
    start_tracking_server,
)

from pipeline.config import load_config

pytestmark = pytest.mark.slow

SCRIPT = REPO / "docker" / "mlflow-server.sh"
DOCKERFILE = REPO / "docker" / "mlflow" / "Dockerfile"
MODEL = "StocksPredictionModel"
SCORE_COLUMNS = ["ticker", "as_of_date", "horizon", "prediction", "model_name", "model_version"]
SERVER_CONF = REPO / "conf" / "server"
SERVER_URI = yaml.safe_load((SERVER_CONF / "tracking.yaml").read_text())["uri"]
SERVER_STORAGE = yaml.safe_load((SERVER_CONF / "training.yaml").read_text())["tuning"]["storage"]


# --------------------------------------------------------------------------- helpers


def _storage_url(database: str) -> str:
    """conf/server/training.yaml's storage URL with another database name."""
    scheme, rest = SERVER_STORAGE.split("://", 1)
    return f"{scheme}://{rest.rsplit('/', 1)[0]}/{database}"


def _tracking_uri(port: int) -> str:
    """conf/server/tracking.yaml's URI on another port."""
    parts = urlsplit(SERVER_URI)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _conf(
    root: Path,
    name: str,
    uri: str,
    storage: str | None = None,
    tracking: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    candidates: dict[str, Any] = FAST_CANDIDATES,
) -> Path:
    """conf/base + conf/server copied, conf/local for this test; own warehouse per config."""
    tuning = {"storage": storage} if storage else {}
    return make_project(
        root,
        name,
        envs=("server",),
        data={"warehouse": str(root / f"{name}.duckdb")},
        # artifact_location must stay unused with an http URI: the server stores artifacts.
        tracking={
            "uri": uri,
            "artifact_location": str(root / "client-artifacts"),
            **(tracking or {}),
        },
        training={"summary_path": str(root / f"{name}.json"), "tuning": tuning, **(training or {})},
        candidates=candidates,
    )


def _client(uri: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """A fresh MLflow database and a fresh Optuna database, dropped afterwards."""
    with fresh_databases("mlflow") as names:
        yield names


@pytest.fixture(scope="module")
def server(
    databases: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerHandle, Path]]:
    """The MLflow server on the fresh database, on a free port; always stopped afterwards."""
    artifacts = tmp_path_factory.mktemp("server") / "artifacts"
    backend = f"postgresql://postgres@127.0.0.1:5432/{databases['mlflow']}"
    with start_tracking_server(backend, artifacts) as handle:
        yield handle, artifacts


@pytest.fixture(scope="module")
def trained(
    server: tuple[ServerHandle, Path],
    databases: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """`train --env server` then `score --env server` against the server."""
    handle, artifacts = server
    root = tmp_path_factory.mktemp("project")
    uri = _tracking_uri(handle.port)
    assert uri == handle.uri
    conf = _conf(root, "conf", uri, _storage_url(databases["optuna"]), training={"n_trials": 2})
    train = run_stockpipe(root, "train", "--config", str(conf), "--env", "server", "--quiet")
    assert train.returncode == 0, f"{train.stdout}\n{train.stderr}\n{handle.log_tail()}"
    output = root / "pred.parquet"
    score = run_stockpipe(
        root, "score", "--config", str(conf), "--env", "server", "--output", str(output)
    )
    assert score.returncode == 0, f"{score.stdout}\n{score.stderr}\n{handle.log_tail()}"
    return {
        "root": root,
        "uri": uri,
        "artifacts": artifacts,
        "summary": json.loads((root / "conf.json").read_text()),
        "predictions": output,
        "storage": _storage_url(databases["optuna"]),
    }


# --------------------------------------------------------------------------- config and script


def test_server_env_config_points_at_the_local_server_and_postgres(tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    shutil.copytree(REPO / "conf" / "base", tmp_path / "conf" / "base")  # no conf/local here
    shutil.copytree(SERVER_CONF, tmp_path / "conf" / "server")
    cfg = load_config(tmp_path / "conf", "server")
    assert cfg.tracking_uri == "http://127.0.0.1:8888"
    assert cfg.training.tuning.storage == SERVER_STORAGE
    assert cfg.training.tuning.primary_metric == "rmse"  # the rest still comes from base
    url = make_url(SERVER_STORAGE)
    assert (url.host, url.port, url.username, url.database) == (
        "127.0.0.1",
        5432,
        "postgres",
        "optuna",
    )
    # the driver SQLAlchemy resolves for this URL is psycopg 3, which the `server` extra installs
    assert url.get_dialect().driver == "psycopg"


def test_script_runs_the_same_server_as_the_helper_and_the_image(tmp_path: Path) -> None:
    backend, host, port = "postgresql://postgres@127.0.0.1:5432/x", "10.1.2.3", 8899
    args = ["--backend-store-uri", backend, "--host", host, "--port", str(port)]
    args += ["--artifacts", str(tmp_path), "--allowed-host", "gpu-box:8899"]
    printed = subprocess.run(
        ["bash", str(SCRIPT), "--print", *args],
        env={**os.environ, "MLFLOW": "mlflow"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    helper = server_command(backend, tmp_path, host, port, ["gpu-box:8899"])
    assert printed == ["mlflow", *helper[1:]]
    assert os.access(SCRIPT, os.X_OK), "docker/mlflow-server.sh is not executable"
    # the image's CMD has the same flags (values differ: host, port, paths) and environment
    image = DOCKERFILE.read_text()
    cmd = image.rsplit("\nCMD ", 1)[1]
    assert set(re.findall(r"--[a-z-]+", cmd)) == {a for a in printed if a.startswith("--")}
    script = SCRIPT.read_text()
    for key, value in SERVER_ENV.items():
        assert f"{key}={value}" in image and f"export {key}={value}" in script
    assert 'exec "${CMD[@]}"' in script


# --------------------------------------------------------------------------- fail fast


def test_unreachable_server_fails_fast_naming_the_uri(tmp_path: Path) -> None:
    uri = _tracking_uri(free_port())  # nobody listens there
    conf = _conf(tmp_path, "conf", uri)  # study storage: conf/server's, never reached
    result = run_stockpipe(tmp_path, "train", "--config", str(conf), "--env", "server", "--quiet")
    assert result.returncode != 0
    assert uri in result.stderr and "unreachable" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    # the check precedes every computation and does not go through MLflow's retry loop
    assert "Max retries" not in result.stderr and "API request" not in result.stderr
    # nothing written: no warehouse, no raw snapshot, no summary, no client-side artifacts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]


# --------------------------------------------------------------------------- train and score


def test_train_registers_the_champion_on_the_server(trained: dict[str, Any]) -> None:
    client = _client(trained["uri"])
    doc = trained["summary"]
    assert doc["tracking_uri"] == trained["uri"]
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert [v.version for v in versions] == ["1"]
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert str(champion.version) == "1" == doc["champion"]["version"]
    assert champion.run_id == doc["champion"]["run_id"]

    # runs: the competition's parent, one per candidate under it, one per trial under those
    parent_id = doc["champion"]["parent_run_id"]
    experiment = client.get_experiment_by_name("stockpipe")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    by_parent: dict[str | None, list[Any]] = {}
    for run in runs:
        by_parent.setdefault(run.data.tags.get("mlflow.parentRunId"), []).append(run)
    assert [r.info.run_id for r in by_parent[None]] == [parent_id]
    candidates = {r.info.run_name: r for r in by_parent[parent_id]}
    assert set(candidates) == {c["name"] for c in FAST_CANDIDATES["candidates"]}
    assert champion.run_id in {r.info.run_id for r in candidates.values()}
    for entry in doc["candidates"]:
        trials = by_parent.get(candidates[entry["name"]].info.run_id, [])
        numbers = sorted(int(r.data.tags["optuna.trial_number"]) for r in trials)
        assert numbers == list(range(entry["n_trials"])) and entry["n_trials"] == 2
    assert len(runs) == 1 + len(candidates) + sum(c["n_trials"] for c in doc["candidates"])

    # artifacts went through the server (served artifacts), not to a client-side folder
    parent = client.get_run(parent_id)
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:/"), parent.info.artifact_uri
    listed = [a.path for a in client.list_artifacts(parent_id, "backtest")]
    assert "backtest/metrics.json" in listed
    stored = list(trained["artifacts"].rglob(f"{parent_id}/artifacts/backtest/metrics.json"))
    assert len(stored) == 1, sorted(str(p) for p in trained["artifacts"].rglob("*"))[:20]
    assert not (trained["root"] / "client-artifacts").exists()


def test_study_lives_in_postgres(trained: dict[str, Any]) -> None:
    doc = trained["summary"]
    names = set(optuna.get_all_study_names(storage=trained["storage"]))
    for entry in doc["candidates"]:
        study_name = f"{doc['study_name']}.{entry['name']}"
        assert study_name in names
        study = optuna.load_study(study_name=study_name, storage=trained["storage"])
        assert len(study.trials) == entry["n_trials"]


def test_score_reads_the_champion_from_the_server(trained: dict[str, Any]) -> None:
    frame = pl.read_parquet(trained["predictions"])
    assert frame.columns == [*SCORE_COLUMNS, "lower_80", "upper_80", "lower_95", "upper_95"]
    assert frame.schema["as_of_date"] == pl.Date and frame.schema["prediction"] == pl.Float64
    row = frame.row(0, named=True)
    assert frame.height == 1 and row["ticker"] == "NVDA" and row["horizon"] == 1
    assert row["model_name"] == MODEL and row["model_version"] == "1"


# --------------------------------------------------------------------------- distributed tuning

STUDY = "distributed"
BUDGET = 12
DISTRIBUTED_CANDIDATES = {"candidates": [STUDY_LIGHTGBM, STUDY_RIDGE]}


def _overlap(trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Whether two trials ran at the same time: each process runs one trial at a time
    (n_jobs 1), so overlapping trials prove that several processes worked on the study."""
    spans = sorted((t.datetime_start, t.datetime_complete) for t in trials)
    latest_end = None
    for start, end in spans:
        assert start is not None and end is not None
        if latest_end is not None and start < latest_end:
            return True
        latest_end = end if latest_end is None else max(latest_end, end)
    return False


RAN = re.compile(r"^(\w+): ran (\d+) trial\(s\) in (\S+)$", re.MULTILINE)


def test_workers_and_coordinator_share_a_postgres_study(
    server: tuple[ServerHandle, Path],
    databases: dict[str, str],
    tmp_path: Path,
) -> None:
    handle, _ = server
    storage = _storage_url(databases["optuna"])
    tracking = {"experiment": "stockpipe-distributed", "registered_model": f"{MODEL}Distributed"}
    training = {"n_trials": BUDGET, "tuning": {"storage": storage, "wait_for_workers_seconds": 60}}
    # one config directory per process, as on separate machines
    coord, *workers = (
        _conf(
            tmp_path,
            f"conf{i}",
            handle.uri,
            tracking=tracking,
            training=training,
            candidates=DISTRIBUTED_CANDIDATES,
        )
        for i in range(3)
    )
    # Create Optuna's tables once before processes race to: see docs/scaling-out.md (several
    # processes initialising an empty database at the same moment collide in CREATE TABLE).
    optuna.storages.RDBStorage(storage)
    procs = [
        spawn_stockpipe(tmp_path, "worker", "--config", str(c), "--env", "server", "--study", STUDY)
        for c in workers
    ]
    train = ("train", "--config", str(coord), "--env", "server", "--study-name", STUDY, "--quiet")
    procs.append(spawn_stockpipe(tmp_path, *train))
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, f"{p.args}\n{out}\n{err}"
        assert "Traceback" not in err
    worker_ran: dict[str, list[int]] = {}
    for out, _ in outs[:2]:
        found = {m[0]: int(m[1]) for m in RAN.findall(out) if m[2] == f"{STUDY}.{m[0]}"}
        assert set(found) == {"lightgbm", "ridge"}, out
        for name, count in found.items():
            worker_ran.setdefault(name, []).append(count)

    doc = json.loads((tmp_path / "conf0.json").read_text())
    client = _client(handle.uri)
    experiment = client.get_experiment_by_name("stockpipe-distributed")
    assert experiment is not None
    bests: dict[str, float] = {}
    busy: set[str] = set()  # processes that ran at least one trial
    for entry in doc["candidates"]:
        name = entry["name"]
        study = optuna.load_study(study_name=f"{STUDY}.{name}", storage=storage)
        trials = shared_study_trials(study, BUDGET, entry["n_trials"])
        complete = [
            t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None
        ]
        assert entry["best_value"] == min(complete) == study.best_value
        bests[name] = min(complete)
        # only the coordinator logs trial runs (to MLflow); workers print their own count
        mine = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`optuna.study` = '{STUDY}.{name}'",
            max_results=500,
        )
        numbers = [int(r.data.tags["optuna.trial_number"]) for r in mine]
        assert len(set(numbers)) == len(numbers) and set(numbers) <= {t.number for t in trials}
        counts = {"coordinator": len(numbers), "worker1": worker_ran[name][0]}
        counts["worker2"] = worker_ran[name][1]
        assert sum(counts.values()) == len(trials), counts  # every trial from exactly one process
        busy |= {process for process, n in counts.items() if n}
        if name == "lightgbm":  # slow trials: processes were at them at the same time
            assert _overlap(trials), [(t.datetime_start, t.datetime_complete) for t in trials]
    assert len(busy) >= 2 and busy & {"worker1", "worker2"}, (busy, worker_ran)
    # workers load the data into a private in-memory warehouse: no warehouse file of theirs
    assert not (tmp_path / "conf1.duckdb").exists() and not (tmp_path / "conf2.duckdb").exists()
    champion = doc["champion"]
    assert champion["candidate"] == min(bests, key=bests.__getitem__)
    assert champion["primary_value"] == bests[champion["candidate"]]
    assert champion["version"] == "1"
