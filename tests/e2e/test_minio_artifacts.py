"""`--env minio` end to end, natively: artifacts through the tracking server into a real S3 bucket.

What the compose `minio` profile runs, without Docker:

* a real S3 endpoint: moto's threaded S3 server on a free port (no MinIO server is offered by
  the package registries this project installs from), with the `mlflow` bucket created by
  boto3 as minio-init does;
* the mlflow-minio server: `start_tracking_server` (the image's flags) on a fresh PostgreSQL
  database, with the compose service's artifacts destination and keys read from
  docker-compose.yml, the endpoint swapped for moto's. Only the server's environment gets them;
* clients: `stockpipe train` and `stockpipe score` with conf/base + conf/minio (tracking URI
  moved to the server's port), no S3 variable and no boto3 (an import of boto3 or botocore
  raises in their processes). Their environment also sends every HTTP
  request except those to `localhost` (the tracking server) to a proxy that refuses it and
  records it: as on a host that cannot resolve compose's `minio:9000`, a client that went to
  the object store directly would fail, and the test would see it try.

Then the objects must be in the bucket, the model must load back, the proxy must have seen no
request, and a plain MLflow client that asks for direct (presigned) downloads, as the server
invites it to, must fail there: the reason pipeline/tracking/store.py turns them off.

Needs PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres; skipped otherwise) and the
`test` extra (moto, boto3).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from support import FAST_CANDIDATES, REPO, STOCKPIPE, fresh_databases, make_project
from tracking_server import (
    ServerHandle,
    free_port,
    s3_environment,
    start_tracking_server,
)

pytestmark = pytest.mark.slow

COMPOSE = REPO / "docker-compose.yml"
MINIO_SERVICE = "mlflow-minio"
MODEL = "StocksPredictionModel"
RIDGE_ONLY = {
    "candidates": [
        {**c, "n_trials": 1} for c in FAST_CANDIDATES["candidates"] if c["name"] == "ridge"
    ]
}
OPTUNA_STORAGE = "postgresql+psycopg://postgres@127.0.0.1:5432/{}"


# --------------------------------------------------------------------------- helpers


def compose_s3_settings() -> tuple[str, dict[str, str]]:
    """mlflow-minio's artifacts destination and environment, with compose's defaults
    (`${VAR:-default}`) applied as an empty environment would."""
    svc = yaml.safe_load(COMPOSE.read_text())["services"][MINIO_SERVICE]
    defaults = re.compile(r"\$\{\w+:-([^}]*)\}")
    argv = [defaults.sub(r"\1", str(a)) for a in svc["command"]]
    env = {k: defaults.sub(r"\1", str(v)) for k, v in svc["environment"].items()}
    return argv[argv.index("--artifacts-destination") + 1], env


class RefusingProxy(BaseHTTPRequestHandler):
    """An HTTP proxy that answers 403 to everything and records what it was asked.

    403, not a closed port: MLflow retries a refused connection to a presigned URL five
    times with exponential backoff (about a minute, whatever MLFLOW_HTTP_REQUEST_MAX_RETRIES
    says), while a 4xx other than 429 fails at once.
    """

    seen: list[str]  # shared by the instances of one server's subclass (see `refusing_proxy`)

    def _refuse(self) -> None:
        self.seen.append(f"{self.command} {self.path}")
        self.send_response(403, "object store unreachable from clients (test proxy)")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # http.server dispatches on do_<METHOD>: the methods a client could send to S3.
    def do_GET(self) -> None:
        self._refuse()

    def do_HEAD(self) -> None:
        self._refuse()

    def do_PUT(self) -> None:
        self._refuse()

    def do_POST(self) -> None:
        self._refuse()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: what matters is in ``seen``."""


def client_env(proxy: str, blocked: Path) -> dict[str, str]:
    """This environment without any S3 setting, every request but localhost's to ``proxy``,
    and boto3/botocore shadowed by modules in ``blocked`` that refuse to import."""
    blocked.mkdir(parents=True, exist_ok=True)
    for name in ("boto3", "botocore"):
        message = f"{name} imported by a client: artifacts must go through the server"
        (blocked / f"{name}.py").write_text(f"raise ImportError({message!r})\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "MLFLOW_S3_", "MLFLOW_ENABLE_PROXY_MULTIPART"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        env[name] = env[name.upper()] = proxy
    env["no_proxy"] = env["NO_PROXY"] = "localhost"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(blocked), env.get("PYTHONPATH")]))
    return {**env, "MLFLOW_DISABLE_TELEMETRY": "true"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """moto's S3 server on a free port, with the bucket of the compose destination."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.fail(f"{exc}: pip install -e '.[test]'")
    destination, env = compose_s3_settings()
    assert destination.startswith("s3://"), destination
    assert set(env) == set(s3_environment("", "", "")), env
    bucket = destination.removeprefix("s3://").split("/", 1)[0]
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    werkzeug = logging.getLogger("werkzeug")  # moto logs every request through it
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=bucket)  # what minio-init does
        yield {
            "client": client,
            "bucket": bucket,
            "destination": destination,
            # the helper's variables are the compose service's, the endpoint moto's
            "server_env": s3_environment(
                endpoint, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
            ),
        }
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture(scope="module")
def refusing_proxy() -> Iterator[tuple[str, list[str]]]:
    """The clients' proxy: its URL and the requests it refused so far."""
    seen: list[str] = []
    handler = type("Handler", (RefusingProxy,), {"seen": seen})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}", seen
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """A fresh MLflow database and a fresh Optuna database, dropped afterwards."""
    with fresh_databases("s3") as names:
        yield names


@pytest.fixture(scope="module")
def server(s3: dict[str, Any], databases: dict[str, str]) -> Iterator[ServerHandle]:
    """The mlflow-minio server, natively: the S3 settings in its environment only."""
    backend = f"postgresql://postgres@127.0.0.1:5432/{databases['mlflow']}"
    with start_tracking_server(backend, s3["destination"], env=s3["server_env"]) as handle:
        yield handle


@pytest.fixture(scope="module")
def trained(
    server: ServerHandle,
    databases: dict[str, str],
    refusing_proxy: tuple[str, list[str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """`train --env minio` then `score --env minio`, as clients with no S3 access."""
    root = tmp_path_factory.mktemp("project")
    # localhost (not 127.0.0.1) is the one host the proxy settings let through
    uri = f"http://localhost:{server.port}"
    conf = make_project(
        root,
        envs=("minio",),
        data={"warehouse": str(root / "warehouse.duckdb")},
        # artifact_location must stay unused with an http URI: the server stores artifacts.
        tracking={"uri": uri, "artifact_location": str(root / "client-artifacts")},
        training={
            "summary_path": str(root / "summary.json"),
            "tuning": {"storage": OPTUNA_STORAGE.format(databases["optuna"])},
        },
        candidates=RIDGE_ONLY,
    )
    proxy, seen = refusing_proxy
    env = client_env(proxy, root / "blocked")
    probe = [sys.executable, "-c", "import boto3"]
    blocked = subprocess.run(probe, env=env, capture_output=True, text=True, check=False)
    assert "imported by a client" in blocked.stderr, "the boto3 block has no effect"

    def stockpipe(*args: str) -> None:
        result = subprocess.run(
            [str(STOCKPIPE), *args, "--config", str(conf), "--env", "minio"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{server.log_tail()}"

    stockpipe("train", "--quiet")
    output = root / "pred.parquet"
    stockpipe("score", "--output", str(output))
    return {
        "root": root,
        "uri": uri,
        "env": env,
        "went_around_the_server": list(seen),
        "summary": json.loads((root / "summary.json").read_text()),
        "predictions": output,
    }


# --------------------------------------------------------------------------- tests


def test_artifacts_land_in_the_bucket(trained: dict[str, Any], s3: dict[str, Any]) -> None:
    import mlflow

    champion = trained["summary"]["champion"]
    parent_id = champion["parent_run_id"]
    listed = s3["client"].list_objects_v2(Bucket=s3["bucket"])
    keys = [obj["Key"] for obj in listed.get("Contents", [])]
    # the competition's run artifacts and the champion's logged model, under MLflow's layout
    assert any(k.endswith(f"/{parent_id}/artifacts/backtest/metrics.json") for k in keys), keys
    client = mlflow.MlflowClient(tracking_uri=trained["uri"], registry_uri=trained["uri"])
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert str(version.version) == champion["version"] == "1"
    assert version.source.startswith("models:/m-"), version.source  # a LoggedModel
    model = client.get_logged_model(version.source.removeprefix("models:/"))
    assert model.artifact_location.startswith("mlflow-artifacts:/"), model.artifact_location
    prefix = model.artifact_location.removeprefix("mlflow-artifacts:/")
    assert f"{prefix}/MLmodel" in keys, (prefix, keys)
    # proxied: runs name the server's artifact URI, the client wrote nothing locally
    run = client.get_run(parent_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    assert not (trained["root"] / "client-artifacts").exists()


def test_clients_never_went_around_the_server(trained: dict[str, Any]) -> None:
    assert trained["went_around_the_server"] == []


def test_the_champion_loads_back_through_the_server(trained: dict[str, Any]) -> None:
    frame = pl.read_parquet(trained["predictions"])
    row = frame.row(0, named=True)
    assert frame.height == 1 and row["ticker"] == "NVDA" and row["horizon"] == 1
    assert row["model_name"] == MODEL and row["model_version"] == "1"


# Run in a fresh process with the clients' environment. MLflow alone (no pipeline import):
# direct downloads on as the server advertises them, then off as store.py sets them.
DOWNLOAD = """
import os, sys, mlflow
uri, run_id, dst = sys.argv[1:]
mlflow.set_tracking_uri(uri)
for direct in ("true", "false"):
    os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = direct
    try:
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="backtest/metrics.json", dst_path=f"{dst}/{direct}"
        )
        print(direct, "ok")
    except Exception as exc:
        print(direct, "failed", type(exc).__name__)
"""


def test_direct_downloads_would_fail_where_the_store_is_unreachable(
    trained: dict[str, Any], refusing_proxy: tuple[str, list[str]], tmp_path: Path
) -> None:
    _, seen = refusing_proxy
    before = len(seen)
    run_id = trained["summary"]["champion"]["parent_run_id"]
    result = subprocess.run(
        [sys.executable, "-c", DOWNLOAD, trained["uri"], run_id, str(tmp_path)],
        env={**trained["env"], "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    # presigned URLs point at the object store, which these clients cannot reach
    assert lines.get("true", "").startswith("failed"), result.stdout + result.stderr
    assert lines.get("false") == "ok", result.stdout + result.stderr
    assert (tmp_path / "false" / "metrics.json").is_file()
    # the failed attempt was a GET of the object itself, signed for the server's S3 endpoint
    assert any("/backtest/metrics.json?" in r and "X-Amz-Signature" in r for r in seen[before:])
