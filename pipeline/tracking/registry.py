"""The Registry port on the MLflow Model Registry (aliases and version tags, not stages).

The ``promoted`` version tag follows the alias, never leads it: a version is registered with
``promoted=false`` and flipped to ``true`` only after a recorded alias has moved onto it. A kill
in between leaves the alias ahead of the tag, which ``reconcile`` repairs; the reverse (a
version that looks promoted but never held the alias) cannot happen.

The alias history is a registered-model tag, read, extended and written back. On a sqlite
store every recorded alias move (move, tag, history) runs under an exclusive lock on
``<db>.registry.lock``, so concurrent promotions, trains and rollbacks on this machine keep
every entry and the history ends where the alias is. A tracking server offers no such lock.

A registration is two steps (create the version, move its alias), so it records its intent
on the version as it is created: ``stockpipe.registration=pending`` with the alias it is
meant to get, whether the gate promoted it and the incumbent it was judged against, plus the
owner process. Moving that alias marks it ``complete``. A process killed in between (kill -9)
leaves it ``pending``; :meth:`MlflowRegistry.settle_pending` (run by every ``train`` and by
``models list``) finishes the alias move if it is still valid, or marks the version
``abandoned`` with the reason, and logs what it did.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pipeline.atomic import file_lock
from pipeline.errors import TrackingError
from pipeline.tracking.orphans import owner_gone, owner_tags
from pipeline.tracking.store import ensure_store, sqlite_path

log = logging.getLogger(__name__)

PROMOTED_TAG = "promoted"
# The registration's intent (see the module doc) and its outcome.
REGISTRATION_TAG = "stockpipe.registration"  # pending | complete | abandoned
INTENT_ALIAS_TAG = "stockpipe.registration.alias"  # the alias the version is meant to get
INTENT_PROMOTE_TAG = "stockpipe.registration.promote"  # "true": a recorded (champion) move
INTENT_INCUMBENT_TAG = "stockpipe.registration.incumbent"  # the champion the gate judged
SETTLED_TAG = "stockpipe.registration.settled"  # what reconciliation did, and why
PENDING, COMPLETE, ABANDONED = "pending", "complete", "abandoned"
# A pending registration from another host (whose process cannot be checked) older than
# this is dead: creating a version and moving its alias takes about a second.
PENDING_STALE_SECONDS = 600.0


def intent_tags(alias: str, promote: bool, incumbent: str | None) -> dict[str, str]:
    """The tags a version is registered with before its ``alias`` moves (``promote``: the
    move is a recorded promotion, judged against ``incumbent``)."""
    return {
        REGISTRATION_TAG: PENDING,
        INTENT_ALIAS_TAG: alias,
        INTENT_PROMOTE_TAG: str(promote).lower(),
        INTENT_INCUMBENT_TAG: incumbent or "",
    }


def settle_all_pending(uri: str) -> list[tuple[str, str, str]]:
    """Settle every registered model's half-done registrations in the store at ``uri``;
    return (model, version, outcome) for each one settled."""
    import mlflow

    ensure_store(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    names = sorted({mv.name for mv in _pending_versions(client, None)})
    return [(n, v, o) for n in names for v, o in MlflowRegistry(uri, n).settle_pending()]


def _pending_versions(client: Any, name: str | None) -> list[Any]:
    query = f"tags.`{REGISTRATION_TAG}` = '{PENDING}'"
    if name is not None:
        query = f"name = '{name}' and {query}"
    return list(client.search_model_versions(query))


class MlflowRegistry:
    """The Registry port on the MLflow Model Registry (aliases, not deprecated stages)."""

    def __init__(self, uri: str, name: str) -> None:
        self.uri = uri
        self.name = name

    def _client(self) -> Any:
        import mlflow

        ensure_store(self.uri)
        return mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def register(
        self, model_uri: str, run_id: str, tags: Mapping[str, str], description: str = ""
    ) -> str:
        """Create a new version of the model (and the model itself on first use). A version
        carrying a pending intent (:func:`intent_tags`) is also tagged with its owner
        process, so that reconciliation can tell a live registration from a dead one."""
        from mlflow.exceptions import MlflowException

        if tags.get(REGISTRATION_TAG) == PENDING:
            tags = {**tags, **owner_tags()}

        client = self._client()
        try:
            client.get_registered_model(self.name)
        except MlflowException:
            try:
                client.create_registered_model(
                    self.name, description="stockpipe forecast of forward log returns"
                )
            except MlflowException:
                # Another process created it since our lookup: fine, if it exists now.
                client.get_registered_model(self.name)
        mv = client.create_model_version(
            self.name,
            source=model_uri,
            run_id=run_id,
            tags=dict(tags),
            description=description or None,
            model_id=model_uri.removeprefix("models:/")
            if model_uri.startswith("models:/m-")
            else None,
        )
        return str(mv.version)

    def set_alias(self, alias: str, version: str, record: bool = False) -> None:
        """Point ``alias`` at ``version``. With ``record`` (a promotion) the move is appended to
        the alias history for ``rollback`` and the version is tagged ``promoted=true``."""
        client = self._client()
        tags = self._require_version(client, version)
        with self._history_lock() if record else contextlib.nullcontext():
            self._move(client, alias, version, record)
        if tags.get(REGISTRATION_TAG) == PENDING and tags.get(INTENT_ALIAS_TAG) == alias:
            client.set_model_version_tag(self.name, version, REGISTRATION_TAG, COMPLETE)

    def _move(self, client: Any, alias: str, version: str, record: bool) -> None:
        """The alias move itself (under the history lock when ``record``)."""
        client.set_registered_model_alias(self.name, alias, version)
        if record:
            self._mark_promoted(client, version)
            self._write_history(client, alias, [*self.alias_history(alias), version])

    def alias_history(self, alias: str) -> list[str]:
        """Versions the alias was recorded on, oldest first (the last one is current)."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self._client().get_registered_model(self.name).tags
        except MlflowException:
            return []
        raw = tags.get(_history_tag(alias), "")
        return [v for v in raw.split(",") if v]

    def rollback(self, alias: str) -> str:
        """Move the alias back to its previously recorded version; return that version."""
        client = self._client()
        with self._history_lock():
            history = self.alias_history(alias)
            if len(history) < 2:
                raise TrackingError(
                    f"{self.name}@{alias} has no previous version to roll back to "
                    f"(history: {history or 'empty'})"
                )
            previous = history[-2]
            client.set_registered_model_alias(self.name, alias, previous)
            self._mark_promoted(client, previous)
            self._write_history(client, alias, history[:-1])
        return previous

    def reconcile(self, alias: str) -> str | None:
        """Repair a promotion cut short between the alias move and the tag: if the version
        holding ``alias`` is not tagged ``promoted=true``, tag it. Return the version fixed."""
        version = self.version_for_alias(alias)
        if version is None:
            return None
        client = self._client()
        if client.get_model_version(self.name, version).tags.get(PROMOTED_TAG) == "true":
            return None
        self._mark_promoted(client, version)
        log.warning(
            "%s v%s holds @%s but was not tagged promoted: fixed", self.name, version, alias
        )
        return version

    def settle_pending(self) -> list[tuple[str, str]]:
        """Finish or abandon every version whose registering process died before its alias
        moved (see the module doc); return (version, outcome) for each, oldest first.

        Versions whose process still runs are left alone: they are being registered now.
        """
        client = self._client()
        now_ms = time.time() * 1000
        settled = []
        for mv in sorted(_pending_versions(client, self.name), key=lambda m: int(m.version)):
            age = (now_ms - (mv.creation_timestamp or 0)) / 1000
            if not owner_gone(mv.tags, age, PENDING_STALE_SECONDS):
                continue
            with self._history_lock():  # one settler at a time, and no promotion meanwhile
                outcome = self._settle(client, str(mv.version))
            if outcome is not None:
                settled.append((str(mv.version), outcome))
        return settled

    def _settle(self, client: Any, version: str) -> str | None:
        """Settle one dead pending registration (re-read under the lock: another settler may
        have done it); return what was done."""
        tags = dict(client.get_model_version(self.name, version).tags)
        if tags.get(REGISTRATION_TAG) != PENDING:
            return None
        alias = tags.get(INTENT_ALIAS_TAG, "")
        promote = tags.get(INTENT_PROMOTE_TAG) == "true"
        judged = tags.get(INTENT_INCUMBENT_TAG) or None
        holder = self.version_for_alias(alias) if alias else None
        problem = _why_not(alias, promote, judged, holder, version)
        if problem is None:
            self._finish_move(client, alias, version, promote, moved=holder == version)
            status, note = COMPLETE, f"completed: @{alias} -> v{version}"
        else:
            status, note = ABANDONED, f"abandoned: {problem}"
        note += f" (registering process {tags.get('stockpipe.pid', '?')} died before)"
        client.set_model_version_tag(self.name, version, SETTLED_TAG, note)
        client.set_model_version_tag(self.name, version, REGISTRATION_TAG, status)
        log.warning("%s v%s: registration cut short; %s", self.name, version, note)
        return status

    def _finish_move(
        self, client: Any, alias: str, version: str, record: bool, moved: bool
    ) -> None:
        """Do what a dead registration left undone of its alias move (``moved``: the alias
        itself had moved, the tag or the history may not have)."""
        if not moved:
            self._move(client, alias, version, record)
        elif record:
            self._mark_promoted(client, version)
            history = self.alias_history(alias)
            if history[-1:] != [version]:
                self._write_history(client, alias, [*history, version])

    def versions(self) -> list[dict[str, Any]]:
        """Every version, newest first, with aliases, tags and lineage."""
        client = self._client()
        found = client.search_model_versions(f"name='{self.name}'")
        out = []
        for mv in sorted(found, key=lambda m: int(m.version), reverse=True):
            full = client.get_model_version(self.name, mv.version)  # search omits aliases
            out.append(
                {
                    "version": str(full.version),
                    "aliases": list(full.aliases),
                    "tags": dict(full.tags),
                    "run_id": full.run_id,
                    "created": full.creation_timestamp,
                    "description": full.description,
                }
            )
        return out

    def version_for_alias(self, alias: str) -> str | None:
        """The version the alias points at, or None (no such alias or model)."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self._client().get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def version_tags(self, version: str) -> dict[str, str]:
        """Tags of one version."""
        return dict(self._client().get_model_version(self.name, version).tags)

    @contextmanager
    def _history_lock(self) -> Iterator[None]:
        """Serialise recorded alias moves on a sqlite store (see the module doc). Its own
        lock file: ``ensure_store`` may take ``<db>.lock`` while this one is held."""
        path = sqlite_path(self.uri)
        if path is None:
            yield
            return
        with file_lock(path.with_name(path.name + ".registry.lock")):
            yield

    def _require_version(self, client: Any, version: str) -> dict[str, str]:
        """The version's tags; TrackingError if there is no such version."""
        from mlflow.exceptions import MlflowException

        try:
            return dict(client.get_model_version(self.name, version).tags)
        except MlflowException as exc:
            raise TrackingError(f"{self.name} has no version {version}: {exc.message}") from exc

    def _mark_promoted(self, client: Any, version: str) -> None:
        client.set_model_version_tag(self.name, version, PROMOTED_TAG, "true")

    def _write_history(self, client: Any, alias: str, history: list[str]) -> None:
        client.set_registered_model_tag(self.name, _history_tag(alias), ",".join(history))


def _why_not(
    alias: str, promote: bool, judged: str | None, holder: str | None, version: str
) -> str | None:
    """Why a dead registration's alias move must not be finished now, or None if it may.

    A promotion is finished only while the champion is still the one the gate judged (or the
    move already happened); a challenger only if no newer version holds the alias.
    """
    if not alias:
        return "no intended alias was recorded"
    if holder == version:
        return None  # the alias moved; only the bookkeeping after it was cut short
    if promote:
        if holder == judged:
            return None
        return (
            f"@{alias} moved to v{holder} after the gate judged v{judged or 'none'}; "
            "re-run train to compare with it"
        )
    if holder is not None and int(holder) > int(version):
        return f"@{alias} already holds the newer v{holder}"
    return None


def _history_tag(alias: str) -> str:
    return f"stockpipe.alias_history.{alias}"
