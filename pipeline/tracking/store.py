"""One way into a tracking store: every MLflow adapter calls ``ensure_store`` first.

Two things go wrong before the first real call, and both are handled here once per process
and URI:

* A fresh sqlite store is created by whichever process touches it first, by running MLflow's
  schema migrations. Two processes doing that at once race (``table ... already exists``), so
  the first-time initialisation runs under an exclusive ``flock`` on ``<db>.lock``.
* An unreachable tracking server makes MLflow retry with backoff for many seconds and then
  print raw urllib text; a short ``/health`` probe fails fast with one clear message instead.
  ``/health`` answers without credentials, so one API call follows it, sent with the
  credentials MLflow's own client would send (``MLFLOW_TRACKING_USERNAME`` and
  ``MLFLOW_TRACKING_PASSWORD``, or ``MLFLOW_TRACKING_TOKEN``): a server that refuses them
  (HTTP 401) or the Host header (403) is reported before anything is computed or written.

Importing this module also keeps every artifact transfer going through the tracking server
(see ``_PROXIED_ARTIFACTS``), so a client never needs a route to the server's object store.
"""

from __future__ import annotations

import base64
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.atomic import file_lock
from pipeline.errors import TrackingUnavailableError

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow's defaults (7 retries with exponential backoff, 120 s timeouts) make a dead server
# look like a hang; fail within about a minute instead. Users can still override both.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
# A server whose artifacts live in S3 (the compose `minio` profile) tells clients it supports
# multipart transfers, and MLflow 3.17 clients then download *every* file, and upload files of
# 500 MB or more, straight from the object store through presigned URLs naming the endpoint
# the server uses (http://minio:9000 in compose). A machine that cannot resolve or reach it
# fails to load any model. Forcing proxied transfers keeps "clients only need the tracking
# server" true; set either variable to true where the object store is reachable and large
# direct transfers are worth it.
_PROXIED_ARTIFACTS = {
    "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
    "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
}
for _name, _value in _PROXIED_ARTIFACTS.items():
    os.environ.setdefault(_name, _value)

PROBE_TIMEOUT_SECONDS = 5.0
# What MLflow's client reads from the environment to authenticate to a tracking server
# (`mlflow server --app-name basic-auth`); stockpipe never takes credentials as flags or config,
# so they stay out of shell history, config files and the train summary.
USERNAME_VAR = "MLFLOW_TRACKING_USERNAME"
PASSWORD_VAR = "MLFLOW_TRACKING_PASSWORD"
TOKEN_VAR = "MLFLOW_TRACKING_TOKEN"
# The cheapest call every user of the server may make (default permission READ or not, the
# search answers 200 with what the user can see); it needs the credentials /health does not.
API_PROBE_PATH = "/api/2.0/mlflow/experiments/search?max_results=1"

_ready: set[str] = set()
_ready_guard = threading.Lock()


def ensure_store(uri: str) -> None:
    """Make the store at ``uri`` usable, once per process: probe an http(s) server, or
    create/migrate a sqlite file under a file lock. Raises TrackingUnavailableError with a
    clear message."""
    if uri in _ready:
        return
    with _ready_guard:
        if uri in _ready:
            return
        if uri.startswith(("http://", "https://")):
            probe_server(uri)
        else:
            path = sqlite_path(uri)
            if path is not None:
                _init_sqlite(uri, path)
        _ready.add(uri)


def probe_server(uri: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """GET ``<uri>/health`` once, then one API call with the environment's credentials, both
    without MLflow's retries; TrackingUnavailableError (exit 4) unless both answer 200."""
    base = uri.rstrip("/")
    try:
        health = http_status(f"{base}/health", timeout)
        api = http_status(base + API_PROBE_PATH, timeout, auth_headers()) if health == 200 else 0
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingUnavailableError(
            f"tracking server {uri} is unreachable ({exc}); start it or pass "
            "--tracking-uri sqlite:///mlruns/mlflow.db for the embedded store"
        ) from exc
    if health != 200:
        raise TrackingUnavailableError(f"tracking server {uri} answered {health} on /health")
    if api != 200:
        raise TrackingUnavailableError(refusal_message(uri, api))


def http_status(url: str, timeout: float, headers: Mapping[str, str] | None = None) -> int:
    """Status code of one GET (an HTTP error status is an answer, not an exception)."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def auth_headers(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The Authorization header MLflow's client sends for these variables: basic auth when
    username and password are both set, else a bearer token, else none."""
    user, password = environ.get(USERNAME_VAR), environ.get(PASSWORD_VAR)
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {token}"}
    if environ.get(TOKEN_VAR):
        return {"Authorization": f"Bearer {environ[TOKEN_VAR]}"}
    return {}


def refusal_message(uri: str, status: int, environ: Mapping[str, str] = os.environ) -> str:
    """Why a server that answers /health refused an API call, and what to set or fix."""
    if status == 401:
        user = environ.get(USERNAME_VAR)
        given = f" of user '{user}'" if user and environ.get(PASSWORD_VAR) else ": none were set"
        return (
            f"tracking server {uri} refused the credentials{given} (HTTP 401); set "
            f"{USERNAME_VAR} and {PASSWORD_VAR} to an account on that server"
        )
    if status == 403:
        host = urlsplit(uri).netloc
        return (
            f"tracking server {uri} answered 403 Forbidden to an API call: its --allowed-hosts "
            f"does not list '{host}', or the user in {USERNAME_VAR} may not read experiments"
        )
    return f"tracking server {uri} answered {status} to {API_PROBE_PATH}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other URIs and in-memory sqlite)."""
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    return None if raw in ("", ":memory:") else Path(raw)


def _init_sqlite(uri: str, path: Path) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_name(path.name + ".lock")):
            # Building the stores runs the migrations (tracking and registry each check their
            # tables); MLflow caches them per URI, so later calls in this process reuse them.
            client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
    except OSError as exc:
        raise TrackingUnavailableError(f"tracking store {uri} cannot be created: {exc}") from exc
    except (MlflowException, SQLAlchemyError) as exc:
        message = getattr(exc, "message", None) or str(exc).splitlines()[0]
        raise TrackingUnavailableError(f"tracking store {uri} cannot be opened: {message}") from exc
