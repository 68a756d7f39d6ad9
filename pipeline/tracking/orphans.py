"""Runs left RUNNING by a process that died (SIGKILL, OOM, power loss) are marked KILLED.

Every run the tracker starts carries its owner: host name, pid and, where ``/proc`` exists,
the process start time (so a recycled pid is not mistaken for the original owner). A run is an
orphan when it is RUNNING, was started on *this* host, and its owner process is gone. Runs from
other hosts are never touched: their processes cannot be checked from here.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HOST_TAG = "stockpipe.host"
PID_TAG = "stockpipe.pid"
START_TAG = "stockpipe.pid_start"
_PARENT_TAG = "mlflow.parentRunId"
# /proc/<pid>/stat fields after the "(comm)" one: index 0 is the state, 19 the start time.
_STATE, _STARTTIME = 0, 19


def owner_tags() -> dict[str, str]:
    """Tags naming the current process as the owner of a run (computed per call: forks)."""
    pid = os.getpid()
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(pid)}
    stat = _proc_stat(pid)
    if stat is not None:
        tags[START_TAG] = stat[_STARTTIME]
    return tags


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` is a live process on this host, and the same one if ``start`` is given."""
    if pid <= 0:  # 0 and negatives address process groups, never a single owner
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists but belongs to another user
    stat = _proc_stat(pid)
    if stat is None:  # no /proc (macOS): the pid exists, which is all we can tell
        return True
    if stat[_STATE] in ("Z", "X"):  # exited, not yet reaped by its parent
        return False
    return start is None or stat[_STARTTIME] == start


def reap_orphans(client: Any, experiment_id: str) -> list[str]:
    """Mark this host's orphan RUNNING runs of the experiment (and their untagged RUNNING
    descendants) KILLED; log a warning naming them and return their ids."""
    running = {r.info.run_id: r for r in _running_runs(client, experiment_id)}
    host = socket.gethostname()
    dead = {rid for rid, r in running.items() if _is_orphan(r.data.tags, host)}
    dead |= _untagged_descendants(running.values(), dead)
    for run_id in sorted(dead):
        client.set_terminated(run_id, status="KILLED")
    if dead:
        names = ", ".join(
            f"{rid} ({running[rid].info.run_name}, pid {running[rid].data.tags.get(PID_TAG, '?')})"
            for rid in sorted(dead)
        )
        log.warning(
            "marked %d orphan run(s) KILLED: started on this host by a process that is gone: %s",
            len(dead),
            names,
        )
    return sorted(dead)


def owner_gone(tags: Mapping[str, str], age_seconds: float, stale_after: float) -> bool:
    """Whether the process named by ``tags`` (``owner_tags``) is gone.

    On this host that is checked; another host's process cannot be, so it counts as gone
    only once the record is older than ``stale_after`` seconds (for steps that take a
    moment, like a registration, where that age means its process died long ago).
    """
    if tags.get(HOST_TAG) == socket.gethostname():
        return _is_orphan(tags, socket.gethostname())
    return age_seconds > stale_after


def _is_orphan(tags: Mapping[str, str], host: str) -> bool:
    if tags.get(HOST_TAG) != host:
        return False
    try:
        pid = int(tags[PID_TAG])
    except (KeyError, ValueError):
        return False
    return not process_alive(pid, tags.get(START_TAG))


def _untagged_descendants(runs: Iterable[Any], dead: set[str]) -> set[str]:
    """Children without owner tags (older code, other tools) die with their parent."""
    found: set[str] = set()
    frontier = set(dead)
    candidates = [r for r in runs if HOST_TAG not in r.data.tags]
    while frontier:
        new = {
            r.info.run_id
            for r in candidates
            if r.data.tags.get(_PARENT_TAG) in frontier and r.info.run_id not in found
        }
        found |= new
        frontier = new
    return found


def _running_runs(client: Any, experiment_id: str) -> list[Any]:
    runs: list[Any] = []
    token: str | None = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string="attributes.status = 'RUNNING'",
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ")".
    fields = raw.rsplit(")", 1)[-1].split()
    return fields if len(fields) > _STARTTIME else None
