"""One way into a tracking store: every MLflow adapter calls ``ensure_store`` first.

Two things go wrong before the first real call, and both are handled here once per process
and URI:

* A fresh sqlite store is created by whichever process touches it first, by running MLflow's
  schema migrations. Two processes doing that at once race (``table ... already exists``), so
  the first-time initialisation runs under an exclusive ``flock`` on ``<db>.lock``.
* An unreachable tracking server makes MLflow retry with backoff for many seconds and then
  print raw urllib text; a short ``/health`` probe fails fast with one clear message instead.

Importing this module also keeps every artifact transfer going through the tracking server
(see ``_PROXIED_ARTIFACTS``), so a client never needs a route to the server's object store.
"""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

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
    """GET ``<uri>/health`` once, without MLflow's retries; TrackingUnavailableError unless it
    answers 200."""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as r:
            status = r.status
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingUnavailableError(
            f"tracking server {uri} is unreachable ({exc}); start it or pass "
            "--tracking-uri sqlite:///mlruns/mlflow.db for the embedded store"
        ) from exc
    if status != 200:
        raise TrackingUnavailableError(f"tracking server {uri} answered {status} on /health")


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
