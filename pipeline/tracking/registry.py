"""The Registry port on the MLflow Model Registry (aliases and version tags, not stages).

The ``promoted`` version tag follows the alias, never leads it: a version is registered with
``promoted=false`` and flipped to ``true`` only after a recorded alias has moved onto it. A kill
in between leaves the alias ahead of the tag, which ``reconcile`` repairs; the reverse (a
version that looks promoted but never held the alias) cannot happen.

The alias history is a registered-model tag, read, extended and written back. On a sqlite
store every recorded alias move (move, tag, history) runs under an exclusive lock on
``<db>.registry.lock``, so concurrent promotions, trains and rollbacks on this machine keep
every entry and the history ends where the alias is. A tracking server offers no such lock.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pipeline.atomic import file_lock
from pipeline.errors import TrackingError
from pipeline.tracking.store import ensure_store, sqlite_path

log = logging.getLogger(__name__)

PROMOTED_TAG = "promoted"


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
        """Create a new version of the model (and the model itself on first use)."""
        from mlflow.exceptions import MlflowException

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
        self._require_version(client, version)
        with self._history_lock() if record else contextlib.nullcontext():
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

    def _require_version(self, client: Any, version: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.get_model_version(self.name, version)
        except MlflowException as exc:
            raise TrackingError(f"{self.name} has no version {version}: {exc.message}") from exc

    def _mark_promoted(self, client: Any, version: str) -> None:
        client.set_model_version_tag(self.name, version, PROMOTED_TAG, "true")

    def _write_history(self, client: Any, alias: str, history: list[str]) -> None:
        client.set_registered_model_tag(self.name, _history_tag(alias), ",".join(history))


def _history_tag(alias: str) -> str:
    return f"stockpipe.alias_history.{alias}"
