"""One writer of the prediction log for all the worker processes of `serve --workers N`.

DuckDB lets one process write a file at a time. Worker processes taking turns on the warehouse
pay a close (checkpoint) and an open, ~40-70 ms each on a busy 2-core machine, at every turn,
and under load they turn at nearly every flush. So the `serve` process itself (uvicorn's
supervisor, which serves no request) owns the log: a ``LogServer`` on a Unix socket commits
what the workers send through the same group commit and held connection as a single process
(``GroupWriter`` over ``HeldWarehouse``), and each worker's ``RemoteLog`` waits for the
answer. The contract is unchanged: a worker answers 200 only after the server has committed
its rows; an error there, or a server that cannot be reached, is the worker's 503.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import shutil
import tempfile
import threading
from contextlib import suppress
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.domain import PredictionLog
from pipeline.serving.logwriter import GroupWriter

log = logging.getLogger(__name__)


class PredictionLogError(RuntimeError):
    """The service's log writer refused or could not take a worker's rows."""


def _ipc(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer)
    return buffer.getvalue()


class LogServer:
    """Commits the rows every worker sends, in the serving command's process."""

    def __init__(self, log: PredictionLog) -> None:
        self.writer = GroupWriter(log)
        self._dir = Path(tempfile.mkdtemp(prefix="stockpipe-log-"))  # private: mode 0700
        self.address = str(self._dir / "log.sock")
        self.authkey = secrets.token_hex(16)
        self._listener = Listener(self.address, "AF_UNIX", authkey=self.authkey.encode())
        self._closed = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._accept, name="stockpipe-log-server", daemon=True).start()

    def close(self) -> None:
        """Stop accepting, write what is pending, remove the socket."""
        self._closed.set()
        with suppress(OSError):
            self._listener.close()
        self.writer.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn = self._listener.accept()
            except Exception:  # closed, or a client that failed authentication
                if self._closed.is_set():
                    return
                log.exception("prediction log server: a connection failed")
                continue
            # One thread per worker (there are few): each waits for its own commits.
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv_bytes()
                except (EOFError, OSError):  # the worker stopped
                    return
                answer: dict[str, Any]
                try:
                    answer = {"rows": self.writer.record(pl.read_ipc(io.BytesIO(data)))}
                except Exception as exc:  # told to the worker, whose request gets 503
                    answer = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                conn.send_bytes(json.dumps(answer).encode())


class RemoteLog:
    """A worker's ``PredictionLog``: rows sent to the ``LogServer``, returned once committed."""

    def __init__(self, address: str, authkey: str) -> None:
        self.address = address
        self.authkey = authkey
        self._conn: Connection | None = None
        self._lock = threading.Lock()  # one exchange at a time on the connection

    def record(self, frame: pl.DataFrame) -> int:
        with self._lock:
            try:
                conn = self._connection()
                conn.send_bytes(_ipc(frame))
                answer = json.loads(conn.recv_bytes())
            except (OSError, EOFError) as exc:
                self._drop()  # reconnect on the next write
                raise PredictionLogError(f"log writer unreachable: {exc}") from exc
        if "error" in answer:
            raise PredictionLogError(answer["error"])
        return int(answer["rows"])

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = Client(self.address, "AF_UNIX", authkey=self.authkey.encode())
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(OSError):
                self._conn.close()
            self._conn = None
