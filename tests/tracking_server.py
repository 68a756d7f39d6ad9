"""Start and stop a local MLflow tracking server on PostgreSQL, for tests and local setups.

Same flags as ``docker/mlflow/Dockerfile`` and ``docker/mlflow-server.sh``: one worker, no job
runner, served artifacts, explicit ``--allowed-hosts``. The server gets its own process group,
so ``ServerHandle.stop()`` ends it and every child, even mid start-up. ``create_database`` and
``drop_database`` use psycopg (the ``server`` extra): no ``createdb`` binary needed.

The artifacts destination is a folder or an object-store URI such as ``s3://mlflow`` (the
compose ``minio`` profile). Either way the server proxies artifacts, so only the server needs
the store's endpoint and credentials (``s3_environment``); clients upload through HTTP.

``auth=AdminAccount(...)`` runs MLflow's own authentication (``--app-name basic-auth``, as the
compose ``mlflow`` service and ``docker/mlflow-server.sh --auth`` do): every API call then needs
a user's credentials, which clients take from ``MLFLOW_TRACKING_USERNAME`` and
``MLFLOW_TRACKING_PASSWORD``. Its users live in the backend database unless told otherwise.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import LiteralString

from pipeline.errors import TrackingUnavailableError
from pipeline.tracking.store import auth_headers, http_status

SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
AUTH_APP = "basic-auth"
PG_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
# scheme://... (s3://bucket, gs://..., mlflow-artifacts:/ has no //); anything else is a folder.
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_store_uri(destination: str | Path) -> bool:
    """Whether an artifacts destination is an object-store URI rather than a local folder.

    A Path never is: ``Path("s3://mlflow")`` would already have collapsed ``//`` into ``/``.
    """
    return isinstance(destination, str) and _URI.match(destination) is not None


def s3_environment(endpoint_url: str, access_key_id: str, secret_access_key: str) -> dict[str, str]:
    """What the *server* process needs for an ``s3://`` artifacts destination on a local
    S3-compatible endpoint (MinIO, moto): MLflow reads the endpoint, boto3 the credentials.

    The region is left to boto3's default (us-east-1), which MinIO and moto accept, as the
    compose ``mlflow-minio`` service does.
    """
    return {
        "MLFLOW_S3_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
    }


@dataclass(frozen=True)
class AdminAccount:
    """The auth app's first admin, created on the first start against an empty user store
    (MLflow ships no default password and wants 12+ characters). ``database_uri`` holds the
    users; None keeps them in the backend store's database (their own tables)."""

    username: str
    password: str = field(repr=False)
    database_uri: str | None = None


def auth_config(database_uri: str, default_permission: str = "READ") -> str:
    """The ``basic_auth.ini`` MLFLOW_AUTH_CONFIG_PATH points the auth app at. It holds no
    secret: the admin account comes from MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD and a database
    password from the URI or PGPASSWORD. READ (MLflow's default) lets every user see every
    run; writing to an experiment or model needs ownership or a grant."""
    # configparser treats % as interpolation: a percent-encoded URI must be escaped.
    return (
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )


def auth_environment(account: AdminAccount, backend_uri: str, config_path: Path) -> dict[str, str]:
    """Write the auth config to ``config_path``; the server environment that uses it."""
    config_path.write_text(auth_config(account.database_uri or backend_uri), encoding="utf-8")
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
        "MLFLOW_AUTH_ADMIN_USERNAME": account.username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": account.password,
        # Signs the UI's CSRF tokens; one random key per server is enough with one worker.
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY")
        or secrets.token_hex(32),
    }


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def allowed_hosts(host: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """Host headers to accept (compared exactly, port included; ``*`` globs): localhost,
    127.0.0.1 and ``host``, bare and with the port, plus ``extra`` (e.g. ``"gpu-box:8888"``)."""
    names = ["localhost", "127.0.0.1"]
    if host not in (*names, "0.0.0.0"):
        names.append(host)
    return [f"{name}{suffix}" for name in names for suffix in ("", f":{port}")] + list(extra)


def server_command(
    backend_uri: str,
    artifacts_dir: str | Path,
    host: str,
    port: int,
    extra_hosts: Sequence[str] = (),
    app_name: str | None = None,
) -> list[str]:
    """The ``mlflow server`` argv (the environment in SERVER_ENV completes it).

    ``artifacts_dir`` is a folder or an object-store URI (``s3://mlflow``), passed as given;
    ``app_name=AUTH_APP`` turns MLflow's authentication on.
    """
    flags = {
        "--backend-store-uri": backend_uri,
        "--artifacts-destination": str(artifacts_dir),
        "--host": host,
        "--port": str(port),
        "--workers": "1",
        "--allowed-hosts": ",".join(allowed_hosts(host, port, extra_hosts)),
    }
    if app_name:
        flags["--app-name"] = app_name
    exe = Path(sys.executable).parent / "mlflow"  # this environment's mlflow, else PATH's
    argv = [str(exe) if exe.is_file() else "mlflow", "server"]
    return argv + [part for flag in flags.items() for part in flag]


@dataclass
class ServerHandle:
    """A running server; ``stop()`` (or leaving the ``with`` block) ends its process group."""

    process: subprocess.Popen[bytes]
    uri: str
    port: int
    log_path: Path
    # What clients send (MLFLOW_TRACKING_USERNAME/PASSWORD) when the server runs basic-auth.
    client_env: dict[str, str] = field(default_factory=dict, repr=False)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's combined stdout/stderr."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL whatever is left after ``timeout``."""
        pgid = self.process.pid  # start_new_session=True: the leader's pid is the group id
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.process.poll()  # reap the leader: as a zombie it would still count as alive
            if not _signal_group(pgid, 0):  # signal 0 only checks that the group exists
                break
            time.sleep(0.1)
        _signal_group(pgid, signal.SIGKILL)
        self.process.wait(timeout=5)  # SIGKILL cannot be ignored

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group; False if no process of it is left."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_until_ready(handle: ServerHandle, timeout: float) -> None:
    """Wait for /health and for a real API call: /health alone passes even when Host is refused."""
    api = f"{handle.uri}/api/2.0/mlflow/experiments/search?max_results=1"
    headers = auth_headers(handle.client_env)  # the admin's, on a basic-auth server
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline and handle.process.poll() is None:
        try:
            health = http_status(f"{handle.uri}/health", 5.0)
            search = http_status(api, 5.0, headers)
            if health == 200 and search == 200:
                return
            last = f"/health {health}, experiments/search {search}"
        except OSError as exc:  # URLError, refused, reset, timeout
            last = str(exc)
        time.sleep(0.5)
    code = handle.process.returncode
    state = f"exited with code {code}" if code is not None else f"not ready after {timeout:.0f}s"
    raise TrackingUnavailableError(
        f"mlflow server at {handle.uri} {state} ({last}); "
        f"log {handle.log_path}:\n{handle.log_tail()}"
    )


def start_tracking_server(
    backend_uri: str,
    artifacts_dir: str | Path,
    port: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 120.0,
    log_path: Path | None = None,
    extra_hosts: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    auth: AdminAccount | None = None,
) -> ServerHandle:
    """Start ``mlflow server`` in its own process group and return once it answers API calls.

    ``artifacts_dir`` is a folder (made absolute and created) or an object-store URI such as
    ``s3://mlflow`` (passed as given; the bucket must exist). ``env`` is added to the server's
    environment only, e.g. ``s3_environment(...)`` for an S3 destination: with proxied
    artifacts the clients need none of it. ``port=None`` picks a free port (a rare race with
    another process binding it first shows as a start-up failure). The log goes to
    ``log_path``, a temporary file by default. ``extra_hosts`` adds ``--allowed-hosts``
    entries. ``auth`` runs basic-auth with that admin (its config is written next to the log;
    ``handle.client_env`` holds the admin's client variables). On any failure, timeout
    included, the process group is stopped before TrackingUnavailableError is raised.
    """
    port = port or free_port(host)
    artifacts = _artifacts(artifacts_dir)
    log_path = log_path or _temp_log(port)
    server_env = {**os.environ, **SERVER_ENV, **(env or {})}
    client_env: dict[str, str] = {}
    if auth is not None:
        config = log_path.with_name(log_path.stem + ".auth.ini")
        server_env.update(auth_environment(auth, backend_uri, config))
        client_env = {"MLFLOW_TRACKING_USERNAME": auth.username}
        client_env["MLFLOW_TRACKING_PASSWORD"] = auth.password
    argv = server_command(
        backend_uri, artifacts, host, port, extra_hosts, AUTH_APP if auth else None
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_env,
            start_new_session=True,
        )
    client_host = "127.0.0.1" if host == "0.0.0.0" else host
    handle = ServerHandle(process, f"http://{client_host}:{port}", port, log_path, client_env)
    try:
        wait_until_ready(handle, timeout)
    except BaseException:
        handle.stop()
        raise
    return handle


def _artifacts(destination: str | Path) -> str | Path:
    """An object-store URI as given; a folder made absolute and created."""
    if is_store_uri(destination):
        return str(destination)
    folder = Path(destination).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _temp_log(port: int) -> Path:
    """A fresh temporary file for the server's combined output."""
    fd, name = tempfile.mkstemp(prefix=f"mlflow-server-{port}-", suffix=".log")
    os.close(fd)
    return Path(name)


def create_database(name: str, conninfo: str = PG_CONNINFO) -> None:
    """CREATE DATABASE ``name`` (connects to the ``postgres`` database, autocommit)."""
    _admin("CREATE DATABASE {}", name, conninfo)


def drop_database(name: str, conninfo: str = PG_CONNINFO) -> None:
    """DROP DATABASE IF EXISTS ``name``, closing any connection still open on it."""
    _admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name, conninfo)


def _admin(statement: LiteralString, name: str, conninfo: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))
