"""A shared tracking server that only lets in who belongs: MLflow's basic-auth, for real.

One `mlflow server --app-name basic-auth` (own process group, free port) on a fresh PostgreSQL
database that holds both the runs and the users, as the compose `mlflow` service does, serves
the module; the fixture always stops it and drops the database. Every `stockpipe` command
runs as a subprocess whose credentials, if any, come only from MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD (whatever the test process's own environment holds is removed).

Needs PostgreSQL 15 on 127.0.0.1:5432 with trust auth for user `postgres`; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from support import FAST_CANDIDATES, REPO, STOCKPIPE, fresh_databases, make_project
from tracking_server import (
    AUTH_APP,
    AdminAccount,
    ServerHandle,
    auth_config,
    server_command,
    start_tracking_server,
)

from pipeline.errors import EXIT_TRACKING
from pipeline.tracking.store import PASSWORD_VAR, TOKEN_VAR, USERNAME_VAR

SCRIPT = REPO / "docker" / "mlflow-server.sh"
MODEL = "StocksPredictionModel"
RIDGE_ONLY = {
    "candidates": [
        {**c, "n_trials": 1} for c in FAST_CANDIDATES["candidates"] if c["name"] == "ridge"
    ]
}
ADMIN = AdminAccount("admin", secrets.token_urlsafe(18))
CREDENTIALS = (USERNAME_VAR, PASSWORD_VAR, TOKEN_VAR)


# --------------------------------------------------------------------------- helpers


def _stockpipe(
    cwd: Path, credentials: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """``stockpipe *args`` with exactly ``credentials`` as its MLflow credentials."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIALS}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", **credentials})
    return subprocess.run(
        [str(STOCKPIPE), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _credentials(user: str, password: str) -> dict[str, str]:
    return {USERNAME_VAR: user, PASSWORD_VAR: password}


@contextmanager
def _signed_in_as(credentials: dict[str, str]) -> Iterator[mlflow.MlflowClient]:
    """An in-process MLflow client that sends ``credentials`` (MLflow reads them from the
    environment at each request); the environment is restored afterwards."""
    saved = {k: os.environ.pop(k) for k in CREDENTIALS if k in os.environ}
    os.environ.update(credentials)
    try:
        uri = mlflow.get_tracking_uri()
        yield mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    finally:
        for key in CREDENTIALS:
            os.environ.pop(key, None)
        os.environ.update(saved)


def _project(root: Path, experiment: str) -> Path:
    """conf/base with the ridge candidate (one trial) and its own experiment name."""
    return make_project(root, tracking={"experiment": experiment}, candidates=RIDGE_ONLY)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """basic-auth on a fresh database (runs and users in it); always stopped afterwards."""
    with fresh_databases("auth") as names:
        backend = f"postgresql://postgres@127.0.0.1:5432/{names['mlflow']}"
        artifacts = tmp_path_factory.mktemp("auth-server") / "artifacts"
        with start_tracking_server(backend, artifacts, auth=ADMIN) as handle:
            previous = mlflow.get_tracking_uri()
            mlflow.set_tracking_uri(handle.uri)
            try:
                yield handle
            finally:
                mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def trained(server: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`stockpipe train` against the server, signed in as the admin."""
    root = tmp_path_factory.mktemp("project")
    conf = _project(root, "stockpipe")
    args = ("train", "--config", str(conf), "--tracking-uri", server.uri, "--trials", "1")
    result = _stockpipe(root, server.client_env, *args, "--quiet")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{server.log_tail()}"
    summary = json.loads((root / "outputs" / "train_summary.json").read_text())
    return {"root": root, "summary": summary}


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_train_with_credentials_registers_the_champion(
    server: ServerHandle, trained: dict[str, Any]
) -> None:
    champion = trained["summary"]["champion"]
    assert champion["version"] == "1" and champion["promoted"] is True
    assert trained["summary"]["tracking_uri"] == server.uri
    with _signed_in_as(server.client_env) as client:
        version = client.get_model_version_by_alias(MODEL, "champion")
        assert str(version.version) == "1" and version.run_id == champion["run_id"]
    # the credentials never land in what stockpipe writes
    written = json.dumps(trained["summary"])
    assert ADMIN.password not in written


@pytest.mark.slow
@pytest.mark.parametrize("who", ["nobody", "wrong-password"])
def test_refused_credentials_stop_train_before_anything(
    who: str, server: ServerHandle, tmp_path: Path
) -> None:
    credentials = {} if who == "nobody" else _credentials(ADMIN.username, "not-the-password")
    conf = _project(tmp_path, f"refused-{who}")
    args = ("train", "--config", str(conf), "--tracking-uri", server.uri, "--trials", "1")
    result = _stockpipe(tmp_path, credentials, *args, "--quiet")

    assert result.returncode == EXIT_TRACKING, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: tracking server {server.uri} refused the credentials"), last
    assert USERNAME_VAR in last and PASSWORD_VAR in last and "401" in last
    assert "Traceback" not in result.stderr and "not-the-password" not in result.stderr
    # nothing half-written: no warehouse, snapshot or summary here, no experiment there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]
    with _signed_in_as(server.client_env) as client:
        assert client.get_experiment_by_name(f"refused-{who}") is None


@pytest.mark.slow
def test_only_who_belongs_can_move_the_champion(
    server: ServerHandle, trained: dict[str, Any]
) -> None:
    from mlflow.server import get_app_client

    reader = _credentials("reader", secrets.token_urlsafe(18))
    with _signed_in_as(server.client_env):
        get_app_client("basic-auth", tracking_uri=server.uri).create_user(
            reader[USERNAME_VAR], reader[PASSWORD_VAR]
        )
    with _signed_in_as({}) as anonymous, pytest.raises(MlflowException, match=r"401|nauthori"):
        anonymous.set_registered_model_alias(MODEL, "champion", "1")
    with _signed_in_as(reader) as client:
        # a user reads the registry (default permission READ) but cannot move the alias
        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
        with pytest.raises(MlflowException, match=r"PERMISSION_DENIED|403"):
            client.set_registered_model_alias(MODEL, "challenger", "1")
    with _signed_in_as(server.client_env) as admin:
        assert "challenger" not in admin.get_registered_model(MODEL).aliases


# --------------------------------------------------------------------------- the native script

# Stands in for mlflow: shows what the script would run it with, and its auth environment.
FAKE_MLFLOW = """#!/bin/sh
printf '%s\\n' "$@"
echo "admin=$MLFLOW_AUTH_ADMIN_USERNAME key=${#MLFLOW_FLASK_SERVER_SECRET_KEY}"
cat "$MLFLOW_AUTH_CONFIG_PATH"
"""


def test_script_auth_mode_runs_what_the_helper_runs(tmp_path: Path) -> None:
    fake = tmp_path / "mlflow"
    fake.write_text(FAKE_MLFLOW)
    fake.chmod(0o755)
    backend = "postgresql://postgres@127.0.0.1:5432/mlflow%2Dx"  # a % configparser must survive
    args = ["--backend-store-uri", backend, "--port", "8899", "--artifacts", str(tmp_path / "a")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_AUTH")}
    env.update({"MLFLOW": str(fake), "TMPDIR": str(tmp_path)})
    env.pop("MLFLOW_FLASK_SERVER_SECRET_KEY", None)
    ran = subprocess.run(
        ["bash", str(SCRIPT), "--auth", *args], env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    helper = server_command(backend, tmp_path / "a", "127.0.0.1", 8899, app_name=AUTH_APP)
    lines = ran.stdout.splitlines()
    assert lines[: len(helper) - 1] == helper[1:]  # the fake is argv[0]
    # the admin defaults to `admin`, the form-signing key is random (64 hex digits), and the
    # auth config is the helper's, written 0600 under $TMPDIR
    assert lines[len(helper) - 1] == "admin=admin key=64"
    assert "\n".join(lines[len(helper) :]) + "\n" == auth_config(backend)
    (written,) = tmp_path.glob("mlflow-basic-auth.*")
    assert written.stat().st_mode & 0o077 == 0
    # without --auth (and MLFLOW_AUTH unset) the command is the plain one
    plain = subprocess.run(
        ["bash", str(SCRIPT), "--print", *args], env=env, capture_output=True, text=True
    )
    assert "--app-name" not in plain.stdout.splitlines()
